package httpapi

import (
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// A live request whose shape is removed while it waits gets 409 naming the
// successor the cache built on the table as it is now.
func TestRemovedShapeNamesSuccessor(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'one')`)
	st := startStack(t, db, Config{LongPollTimeout: 20 * time.Second})
	first := mustFetch(t, st.shapeURL("table", "items", "offset", "-1", "where", "id > 0"))
	old := first.header.Get(volt.HeaderHandle)
	if first.status != 200 || old == "" {
		t.Fatalf("initial: %d %s", first.status, first.body)
	}
	pgtest.Exec(t, db, `ALTER TABLE items ADD COLUMN note text`)
	done := make(chan reply, 1)
	parked := st.srv.parked.Load()
	go func() {
		r, _ := fetch(st.shapeURL("table", "items", "offset", first.header.Get(volt.HeaderOffset), "handle", old, "where", "id > 0", "live", "true"))
		done <- r
	}()
	waitFor(t, 10*time.Second, "the live request to park", func() bool { return st.srv.parked.Load() > parked })
	if !st.srv.Cache.Delete(old) {
		t.Fatal("delete failed")
	}
	r := <-done
	next := r.header.Get(volt.HeaderHandle)
	if r.status != 409 || next == "" || next == old {
		t.Fatalf("live request of a removed shape: %d, handle %q (old %q), %s", r.status, next, old, r.body)
	}
	e, ok := st.srv.Cache.Lookup(next)
	if !ok || e.Shape.Def.Where != "id > 0" || len(e.Shape.Table.Columns) != 3 {
		t.Fatalf("successor %q: found %v", next, ok)
	}
}
