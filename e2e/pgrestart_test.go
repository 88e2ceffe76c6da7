package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgembed"
	"github.com/voltsync/volt/internal/pgtest"
)

// TestPostgresRestart restarts Postgres under a running volt: volt
// reconnects and a live client keeps receiving changes, none lost.
func TestPostgresRestart(t *testing.T) {
	c := pgtest.NewCluster(t)
	db := pgtest.NewDBOn(t, c)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'a')`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s")
	f := newFollower(v, "table", "items")
	f.catchUp(t)
	pgtest.Exec(t, db, `INSERT INTO items VALUES (2, 'before restart')`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c2, err := c.Restart(ctx, pgembed.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()); _ = os.RemoveAll(c2.DataDir) })
	pgtest.Exec(t, db, `INSERT INTO items VALUES (3, 'after restart')`, `UPDATE items SET title = 'b' WHERE id = 1`)
	want := pgRows(t, db, "items", 1, `SELECT id, title FROM items`)
	f.pollUntil(t, "changes across a Postgres restart", func(rows map[string]map[string]*string) bool { return diffRows(rows, want) == "" })
}
