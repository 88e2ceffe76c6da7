package shapecache

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
)

// TestCreationBurst creates N shapes owner_id = k of a table with R rows
// per owner concurrently (64 in flight, like volt bench's S3) through
// GetOrCreate, waits until every snapshot is complete and in the catalog,
// and checks that each holds its rows and that the catalog lists every
// shape. It logs the rate and, for the same shapes, the parts of a
// creation measured alone: Store.Create, the snapshot query over pgx,
// and the flush that makes them durable. The suite runs 40 shapes of 20
// rows; VOLT_S3_SHAPES=<n> and VOLT_S3_ROWS=<r> make it a measurement by
// hand (VOLT_S3_CPUPROFILE names a file for a CPU profile of the burst).
func TestCreationBurst(t *testing.T) {
	n := envRows("VOLT_S3_SHAPES", 40)
	per := envRows("VOLT_S3_ROWS", 20)
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE s3 (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`,
		fmt.Sprintf(`INSERT INTO s3 SELECT g, (g - 1) / %d, 'name ' || g, 'issue title number ' || g,
			CASE WHEN g %% 3 = 0 THEN 'closed' ELSE 'open' END, g %% 5 FROM generate_series(1, %d) g`, per, n*per),
		`CREATE INDEX ON s3 (owner_id)`, `VACUUM (ANALYZE) s3`)
	dir := t.TempDir()
	h := startHarness(t, url, dir, func(c *Cache) {})
	ctx := context.Background()
	table, err := h.insp.Table(ctx, "public", "s3")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cache.Publisher.AddTable(ctx, "public", "s3"); err != nil {
		t.Fatal(err)
	}
	shapes := make([]*shape.Shape, n)
	for k := range shapes {
		if shapes[k], err = shape.New(shape.Definition{Schema: "public", Table: "s3", Where: fmt.Sprintf("owner_id = %d", k)}, table); err != nil {
			t.Fatal(err)
		}
	}

	// The query alone, over pgx, 64 at a time (the bench's baseline).
	q := postgres.SnapshotQuery{Table: `"public"."s3"`}
	for _, c := range shapes[0].SelectedNames() {
		q.Columns = append(q.Columns, postgres.QuoteIdent(c))
	}
	start := time.Now()
	creationRun(t, n, func(k int) error {
		qk := q
		qk.Where = fmt.Sprintf(`"owner_id" = %d`, k)
		return h.cache.Snapshotter.Snapshot(ctx, qk, func(postgres.SnapshotInfo) error { return nil }, func([][]byte) error { return nil })
	})
	queries := time.Since(start)

	var prof *os.File
	if p := os.Getenv("VOLT_S3_CPUPROFILE"); p != "" {
		if prof, err = os.Create(p); err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			t.Fatal(err)
		}
	}
	entries := make([]*Entry, n)
	start = time.Now()
	creationRun(t, n, func(k int) error {
		e, err := h.cache.GetOrCreate(ctx, shapes[k])
		if err != nil {
			return err
		}
		<-e.Ready()
		entries[k] = e
		return e.Err()
	})
	ready := time.Since(start)
	h.cache.flush() // what the flush loop has not made durable yet
	all := time.Since(start)
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	t.Logf("%d shapes of %d rows: created and complete in %v (%.0f shapes/s), in the catalog after %v (%.0f shapes/s); the queries alone over pgx %v (%.0f/s)",
		n, per, ready, float64(n)/ready.Seconds(), all, float64(n)/all.Seconds(), queries, float64(n)/queries.Seconds())

	for k, e := range entries {
		if got := len(rows(t, e)); got != per {
			t.Fatalf("shape %d: %d rows, want %d", k, got, per)
		}
	}
	h.stop() // the catalog is read closed: loadCatalog trims a torn tail
	c, recs, err := loadCatalog(h.cache.catalog.path)
	if err != nil {
		t.Fatal(err)
	}
	c.f.Close()
	listed := map[string]bool{}
	for _, r := range recs {
		listed[r.Handle] = true
	}
	for k, e := range entries {
		if !listed[e.Handle] {
			t.Fatalf("shape %d (%s) is complete and flushed but not in the catalog", k, e.Handle)
		}
	}
}

// creationRun calls fn(k) for k in 0..n-1, 64 at a time, and fails t on
// the first error.
func creationRun(t *testing.T, n int, fn func(k int) error) {
	t.Helper()
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < n; k = int(next.Add(1) - 1) {
				if err := fn(k); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		t.Fatal(*p)
	}
}
