package shapecache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/postgres"
)

// A restart restores every shape from the catalog without opening logs,
// and the restored shapes keep receiving changes.
func TestRestartRestoresFromCatalog(t *testing.T) {
	url := pgtest.NewDB(t)
	dir := t.TempDir()
	h := startHarness(t, url, dir, nil)
	h.exec(itemsDDL)
	h.insertOwners(40, 0)
	const n = 40
	var handles []string
	for k := 0; k < n; k++ {
		handles = append(handles, h.newShape(fmt.Sprintf("owner_id = %d", k)).Handle)
	}
	e7, _ := h.cache.Lookup(handles[7])
	h.exec(`INSERT INTO items VALUES (1007, 7, 'second for 7')`)
	waitFor(t, e7, "insert for owner 7", func() bool { return len(rows(t, e7)) == 2 })
	h.stop()

	h = startHarness(t, url, dir, nil)
	if got := h.cache.Len(); got != n {
		t.Fatalf("restored %d shapes, want %d", got, n)
	}
	if got := h.cache.logs.count(); got != 0 {
		t.Fatalf("%d logs open right after restore, want 0 (opened on demand)", got)
	}
	for k, hd := range handles {
		e, ok := h.cache.Lookup(hd)
		if !ok {
			t.Fatalf("shape %s (owner %d) not restored", hd, k)
		}
		want := 1
		if k == 7 {
			want = 2
		}
		if got := len(rows(t, e)); got != want {
			t.Fatalf("owner %d: %d rows after restart, want %d", k, got, want)
		}
	}
	e3, _ := h.cache.Lookup(handles[3])
	h.exec(`UPDATE items SET title = 'changed' WHERE owner_id = 3`)
	waitFor(t, e3, "update for owner 3", func() bool {
		for _, r := range rows(t, e3) {
			return r["title"] == "changed"
		}
		return false
	})
}

// With a limit on open logs, idle logs are closed and reopened on use
// without losing entries.
func TestIdleLogsAreClosedAndReopened(t *testing.T) {
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), func(c *Cache) { c.MaxOpenLogs = 5 })
	h.exec(itemsDDL)
	h.insertOwners(30, 0)
	var es []*Entry
	for k := 0; k < 30; k++ {
		es = append(es, h.newShape(fmt.Sprintf("owner_id = %d", k)))
	}
	h.cache.flush() // the janitor closes only logs whose snapshot is complete and synced
	h.cache.closeIdleLogs()
	if got := h.cache.logs.count(); got > 5 {
		t.Fatalf("%d logs open, limit 5", got)
	}
	h.exec(`UPDATE items SET title = 'x'`)
	for k, e := range es {
		waitFor(t, e, fmt.Sprintf("update of owner %d", k), func() bool {
			r := rows(t, e)
			return len(r) == 1 && first(r)["title"] == "x"
		})
	}
	h.cache.flush()
	h.cache.closeIdleLogs()
	if got := h.cache.logs.count(); got > 5 {
		t.Fatalf("%d logs open after updates, limit 5", got)
	}
}

func first(m map[string]map[string]string) map[string]string {
	for _, v := range m {
		return v
	}
	return nil
}

// Unused shapes expire with their files; their clients see them gone.
func TestUnusedShapesExpire(t *testing.T) {
	url := pgtest.NewDB(t)
	dir := t.TempDir()
	h := startHarness(t, url, dir, nil)
	h.exec(itemsDDL)
	h.insertOwners(2, 0)
	old := h.newShape("owner_id = 0")
	time.Sleep(5 * time.Millisecond) // lastUsed has millisecond resolution
	cutoff := time.Now()
	fresh := h.newShape("owner_id = 1")
	fresh.Touch()
	h.cache.flush() // both are in the catalog; nothing else is pending
	h.cache.expire(cutoff)
	if !old.IsGone() {
		t.Fatal("unused shape was not removed")
	}
	if fresh.IsGone() {
		t.Fatal("recently used shape was removed")
	}
	waitRemoved(t, filepath.Join(dir, old.Handle), "files of the expired shape are still there")
	if _, err := old.Read(old.Latest()); !errors.Is(err, ErrShapeGone) {
		t.Fatalf("read of an expired shape: %v, want ErrShapeGone", err)
	}
	// The removal is in the catalog file after a flush, without Close (a
	// crash now would not bring the shape back).
	h.cache.flush()
	if listed := catalogHandles(t, dir); listed[old.Handle] || !listed[fresh.Handle] {
		t.Fatalf("catalog after expiry and flush: %v", listed)
	}
	h.stop()
	h = startHarness(t, url, dir, nil)
	if _, ok := h.cache.Lookup(old.Handle); ok {
		t.Fatal("expired shape came back after a restart")
	}
	if _, ok := h.cache.Lookup(fresh.Handle); !ok {
		t.Fatal("live shape lost in the restart")
	}
}

// ShapeTTL runs expiry in the background.
func TestShapeTTLExpiresInBackground(t *testing.T) {
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), func(c *Cache) { c.ShapeTTL = 50 * time.Millisecond })
	h.exec(itemsDDL)
	e := h.newShape("owner_id = 0")
	waitGone(t, e, "shape not expired in the background")
}

// A dropped table's shapes are removed with their files.
func TestDroppedTableRemovesShapes(t *testing.T) {
	url := pgtest.NewDB(t)
	dir := t.TempDir()
	h := startHarness(t, url, dir, func(c *Cache) { c.SchemaCheckInterval = 20 * time.Millisecond })
	h.exec(itemsDDL)
	e := h.newShape("")
	h.exec(`DROP TABLE items`)
	waitGone(t, e, "shape of a dropped table not removed")
	waitRemoved(t, filepath.Join(dir, e.Handle), "files of the dropped table's shape are still there")
}

// A log that grew past the compaction thresholds is replaced by a fresh
// snapshot: new clients download the live rows only, the old log serves
// its clients for the grace period and is then removed.
func TestCompactionReplacesLongLogs(t *testing.T) {
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		c.Compaction = Compaction{MinOps: 50, Grace: 2 * time.Second}
	})
	h.exec(itemsDDL)
	h.insertOwners(3, 0)
	old := h.newShape("")
	// One transaction, so the successor's snapshot comes after all of it.
	var updates strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&updates, "UPDATE items SET title = 'v%d' WHERE id = 1;", i)
	}
	h.exec(updates.String())
	// The old log still serves its clients everything, during the grace period.
	waitFor(t, old, "the last update", func() bool { return rows(t, old)[`"public"."items"/"1"`]["title"] == "v59" })
	if n := len(readAll(t, old)); n < 60 {
		t.Fatalf("old log holds %d messages, want the whole history", n)
	}
	waitGone(t, old, "long log was not compacted and retired")
	ne, err := h.getShape("")
	if err != nil {
		t.Fatal(err)
	}
	<-ne.Ready()
	if ne.Handle == old.Handle {
		t.Fatal("no successor")
	}
	msgs := readAll(t, ne)
	if len(msgs) > 2*3 {
		t.Fatalf("new client downloads %d messages for 3 rows", len(msgs))
	}
	r := rows(t, ne)
	if len(r) != 3 || r[`"public"."items"/"1"`]["title"] != "v59" {
		t.Fatalf("compacted rows wrong: %v", r)
	}
	h.exec(`UPDATE items SET title = 'after' WHERE id = 2`)
	waitFor(t, ne, "update after compaction", func() bool { return rows(t, ne)[`"public"."items"/"2"`]["title"] == "after" })
}

// gatedSnapshotter holds every snapshot until released.
type gatedSnapshotter struct {
	Snapshotter
	gate chan struct{}
}

func (g *gatedSnapshotter) Snapshot(ctx context.Context, q postgres.SnapshotQuery, info func(postgres.SnapshotInfo) error, row func([][]byte) error) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Snapshotter.Snapshot(ctx, q, info, row)
}

// Past the running and queued snapshot limits, new shapes are refused with
// ErrOverloaded; existing shapes are still served.
func TestSnapshotLimit(t *testing.T) {
	url := pgtest.NewDB(t)
	gate := make(chan struct{})
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		c.Snapshotter = &gatedSnapshotter{Snapshotter: c.Snapshotter, gate: gate}
		c.SnapshotConcurrency = 1
		c.MaxQueuedSnapshots = 1
	})
	h.exec(itemsDDL)
	a, err := h.getShape("owner_id = 1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.getShape("owner_id = 2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.getShape("owner_id = 3"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third concurrent snapshot: %v, want ErrOverloaded", err)
	}
	if again, err := h.getShape("owner_id = 1"); err != nil || again != a {
		t.Fatalf("existing shape while overloaded: %v", err)
	}
	close(gate)
	<-a.Ready()
	<-b.Ready()
	if a.Err() != nil || b.Err() != nil {
		t.Fatal(a.Err(), b.Err())
	}
	if _, err := h.getShape("owner_id = 3"); err != nil {
		t.Fatalf("after the snapshots finished: %v", err)
	}
}

// A change of table definition removes the table's shapes even when
// routing does not show the change to them (it matches another shape).
func TestRelationChangeReachesUnroutedShapes(t *testing.T) {
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), nil)
	h.exec(itemsDDL)
	h.insertOwners(2, 0)
	one := h.newShape("owner_id = 1")
	h.exec(`ALTER TABLE items ADD COLUMN extra int`, `INSERT INTO items VALUES (100, 0, 'for owner 0', 5)`)
	waitGone(t, one, "shape kept its old table definition after ALTER TABLE")
}

// A restart drops cataloged shapes whose files are gone and deletes
// directories no shape owns.
func TestRestartCleansUp(t *testing.T) {
	url := pgtest.NewDB(t)
	dir := t.TempDir()
	h := startHarness(t, url, dir, nil)
	h.exec(itemsDDL)
	h.insertOwners(2, 0)
	a := h.newShape("owner_id = 0")
	b := h.newShape("owner_id = 1")
	h.stop()
	if err := os.RemoveAll(filepath.Join(dir, a.Handle)); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(dir, "123-1000") // a handle from long ago
	if err := os.Mkdir(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	h = startHarness(t, url, dir, nil)
	ea, ok := h.cache.Lookup(a.Handle)
	if !ok {
		t.Fatal("shape without files not listed until first use")
	}
	if _, err := ea.Read(volt.BeforeAll); !errors.Is(err, ErrShapeGone) {
		t.Fatalf("read of a shape whose files are gone: %v", err)
	}
	if err := poll(func() bool { _, ok := h.cache.Lookup(a.Handle); return !ok }); err != nil {
		t.Fatal("shape whose files are gone was not removed")
	}
	waitRemoved(t, orphan, "orphan directory not removed")
	eb, _ := h.cache.Lookup(b.Handle)
	if got := len(rows(t, eb)); got != 1 {
		t.Fatalf("intact shape has %d rows after restart, want 1", got)
	}
}

// waitGone waits (bounded) until e is removed.
func waitGone(t *testing.T, e *Entry, failure string) {
	t.Helper()
	select {
	case <-e.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal(failure)
	}
}

// catalogHandles reads the catalog file in dir as a restart would.
func catalogHandles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	cat, recs, err := loadCatalog(filepath.Join(dir, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.f.Close()
	out := map[string]bool{}
	for _, r := range recs {
		out[r.Handle] = true
	}
	return out
}

// waitRemoved waits (bounded) until path no longer exists: files are
// deleted by a background goroutine, with no signal to wait on.
func waitRemoved(t *testing.T, path, failure string) {
	t.Helper()
	if err := poll(func() bool { _, err := os.Stat(path); return os.IsNotExist(err) }); err != nil {
		t.Fatal(failure)
	}
}
