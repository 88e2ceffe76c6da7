package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestQueryTimeoutBoundsShapeQueries: -query-timeout stops a shape's
// query in Postgres. An initial snapshot that runs past it is a 400 naming
// the limit (the same query would again), a move-in query that does
// removes its shape (409), and both leave volt serving: once the query
// can finish, the same shapes are created and synced. The queries are held
// by a lock on the outer table, which Postgres counts in statement_timeout
// as it counts work.
func TestQueryTimeoutBoundsShapeQueries(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE qt_groups (id int PRIMARY KEY, open bool NOT NULL)`,
		`CREATE TABLE qt_items (id int PRIMARY KEY, group_id int NOT NULL, v text NOT NULL)`,
		`INSERT INTO qt_groups VALUES (1, true), (2, false)`,
		`INSERT INTO qt_items SELECT g, 1 + g % 2, 'item ' || g FROM generate_series(1, 20) g`)
	v := startVolt(t, db, "VOLT_QUERY_TIMEOUT=300ms", "VOLT_LONG_POLL_TIMEOUT=2s")
	sub := "group_id IN (SELECT id FROM qt_groups WHERE open)"

	// A shape on the table publishes it; the follower waits for moves.
	f := newFollower(v, "table", "qt_items", "where", sub)
	f.catchUp(t)
	if len(f.rows) != 10 {
		t.Fatalf("subquery shape holds %d rows, want 10", len(f.rows))
	}

	ctx := ctxT(t)
	locker := sqsConn(t, db)
	lock := func() {
		t.Helper()
		if _, err := locker.Exec(ctx, "BEGIN; LOCK TABLE qt_items IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
	}
	unlock := func() {
		t.Helper()
		if _, err := locker.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}

	// An initial snapshot past the limit: 400 naming it.
	lock()
	r := get(t, v.shapeURL("table", "qt_items", "where", "v <> 'x'", "offset", "-1"))
	unlock()
	if r.Status != 400 || !strings.Contains(string(r.Body), "-query-timeout") || !strings.Contains(string(r.Body), `"where"`) {
		t.Fatalf("snapshot past the query timeout: %d %s, want 400 naming -query-timeout under where", r.Status, r.Body)
	}
	// The same shape is created once its query can finish.
	g := newFollower(v, "table", "qt_items", "where", "v <> 'x'")
	g.catchUp(t)
	if len(g.rows) != 20 {
		t.Fatalf("shape after the timeout holds %d rows, want 20", len(g.rows))
	}

	// A move-in query past the limit removes the shape: its client is
	// told to refetch, and the refetch holds the moved-in rows.
	lock()
	pgtest.Exec(t, db, `UPDATE qt_groups SET open = true WHERE id = 2`)
	old := f.handle
	deadline := time.Now().Add(time.Minute)
	for f.handle == old {
		if time.Now().After(deadline) {
			t.Fatal("the shape whose move-in query timed out was not removed within a minute")
		}
		r := f.poll(t)
		if r.Status != 200 && r.Status != 409 {
			t.Fatalf("poll while the move-in query is held: %d %s", r.Status, r.Body)
		}
		if r.Status == 200 && len(f.rows) > 10 {
			t.Fatalf("rows moved in although the move-in query could not run: %d rows", len(f.rows))
		}
	}
	unlock()
	f.catchUp(t)
	if len(f.rows) != 20 {
		t.Fatalf("refetched subquery shape holds %d rows, want 20", len(f.rows))
	}
}
