package mutations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration creates the tables volt owns. Receipts have a primary key so
// that clients can sync them as a shape (where client_id = '…').
var migration = []string{
	`SELECT pg_advisory_xact_lock(hashtext('volt.mutations.migrate'))`,
	`CREATE SCHEMA IF NOT EXISTS volt`,
	`CREATE TABLE IF NOT EXISTS volt.clients (
		client_id text PRIMARY KEY,
		last_seq  bigint NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE IF NOT EXISTS volt.receipts (
		client_id  text NOT NULL,
		seq        bigint NOT NULL,
		status     text NOT NULL,
		code       text,
		message    text,
		txid       bigint,
		xid8       text,
		lsn        text,
		detail     jsonb,
		created_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (client_id, seq)
	)`,
	// volt.fail raises code: the statements of a client transaction are
	// sent together with its COMMIT (pipeline.go), so a statement whose
	// outcome must stop the transaction (the seq is not the next one, the
	// row to update is missing) fails, and Postgres skips the rest.
	`CREATE OR REPLACE FUNCTION volt.fail(code text, message text) RETURNS integer
		LANGUAGE plpgsql VOLATILE AS $$
	BEGIN
		RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
	END
	$$`,
}

// Migrate creates schema volt with volt.clients and volt.receipts. It is
// idempotent and safe to run from several processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, stmt := range migration {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate volt schema: %w", err)
	}
	return nil
}
