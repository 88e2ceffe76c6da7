package shapecache

import (
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

// Shapes created from separate catalog lookups share the cache's table
// state (one canonical table per version: the catalog writes it once),
// and a cache opened again builds its own instead of finding the
// previous cache's: nothing is kept process-wide.
func TestCacheOwnsTableState(t *testing.T) {
	url := pgtest.NewDB(t)
	dir := t.TempDir()
	h := startHarness(t, url, dir, nil)
	h.exec(itemsDDL)
	e1 := h.newShape("owner_id = 1")
	e2 := h.newShape("owner_id = 2")
	if e1.Shape.Table != e2.Shape.Table {
		t.Fatal("two shapes of one table version have distinct tables")
	}
	first := e1.Shape.Table
	h.stop()

	h = startHarness(t, url, dir, nil)
	r1, ok1 := h.cache.Lookup(e1.Handle)
	r2, ok2 := h.cache.Lookup(e2.Handle)
	if !ok1 || !ok2 {
		t.Fatal("shapes not restored")
	}
	if r1.Shape.Table != r2.Shape.Table {
		t.Fatal("restored shapes of one table version have distinct tables")
	}
	if r1.Shape.Table == first {
		t.Fatal("the reopened cache uses the closed cache's table: table state is shared through the process")
	}
	e3 := h.newShape("owner_id = 3")
	if e3.Shape.Table != r1.Shape.Table {
		t.Fatal("a shape created after restore does not share the restored shapes' table")
	}
}
