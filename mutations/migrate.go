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
	// volt.claim_seqs is the claim of a batch (claimSQL): for each client
	// ids[i] it advances last_seq from firsts[i]-1 to lasts[i], creating
	// the client's row when firsts[i] is 1, and raises VLT01 unless every
	// client's first seq is its next one. It returns the transaction's
	// 32-bit xid. Each client is one lookup of the primary key: a single
	// statement joining the arrays with volt.clients is planned once per
	// connection (a generic plan), and that plan read the whole table.
	`CREATE OR REPLACE FUNCTION volt.claim_seqs(ids text[], firsts bigint[], lasts bigint[]) RETURNS bigint
		LANGUAGE plpgsql VOLATILE AS $$
	BEGIN
		FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
			UPDATE volt.clients SET last_seq = lasts[i] WHERE client_id = ids[i] AND last_seq = firsts[i] - 1;
			IF NOT FOUND AND firsts[i] = 1 THEN
				INSERT INTO volt.clients (client_id, last_seq) VALUES (ids[i], lasts[i]) ON CONFLICT DO NOTHING;
			END IF;
			IF NOT FOUND THEN
				RAISE EXCEPTION USING ERRCODE = '` + codeNotNext + `', MESSAGE = 'a seq is not the next one of its client';
			END IF;
		END LOOP;
		RETURN pg_current_xact_id()::xid::text::bigint;
	END
	$$`,
	// volt.set_last_seqs sets the last_seq of each client ids[i] to
	// seqs[i] (setLastSeqSQL), by primary key as volt.claim_seqs.
	`CREATE OR REPLACE FUNCTION volt.set_last_seqs(ids text[], seqs bigint[]) RETURNS void
		LANGUAGE plpgsql VOLATILE AS $$
	BEGIN
		FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
			UPDATE volt.clients SET last_seq = seqs[i] WHERE client_id = ids[i];
		END LOOP;
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
