package e2e

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// lockholdBegin connects to db, opens a transaction and runs stmt in it
// (a LOCK TABLE, a SELECT … FOR UPDATE): the lock it takes is held until
// the caller commits or rolls back the returned transaction. The
// connection is closed when the test ends.
func lockholdBegin(t *testing.T, db, stmt string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	return tx
}
