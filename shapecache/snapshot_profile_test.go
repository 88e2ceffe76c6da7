package shapecache

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
)

// TestSnapshotPhasesProfile times the parts of an initial snapshot of
// volt bench's S1 table: COPY, the row query alone, the query plus row
// encoding, takeSnapshot (query, encoding, log appends) and reading the
// log back, and checks that each reads every row. The suite runs it on
// 2,000 rows; VOLT_S1_PROFILE=<rows> makes it a measurement by hand
// (VOLT_S1_CPUPROFILE names a file for a CPU profile of the takeSnapshot
// rounds).
func TestSnapshotPhasesProfile(t *testing.T) {
	n := envRows("VOLT_S1_PROFILE", 2000)
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE s1 (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`,
		fmt.Sprintf(`INSERT INTO s1 SELECT g, g %% 1000, 'name ' || g, 'issue title number ' || g,
			CASE WHEN g %% 3 = 0 THEN 'closed' ELSE 'open' END, g %% 5 FROM generate_series(1, %d) g`, n),
		`VACUUM (ANALYZE) s1`)
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {})
	ctx := context.Background()
	table, err := h.insp.Table(ctx, "public", "s1")
	if err != nil {
		t.Fatal(err)
	}
	cols := `id, owner_id, name, title, status, priority`
	q := postgres.SnapshotQuery{Table: `"public"."s1"`, Columns: []string{"id", "owner_id", "name", "title", "status", "priority"}}
	sh, err := shape.New(shape.Definition{Schema: "public", Table: "s1"}, table)
	if err != nil {
		t.Fatal(err)
	}
	enc := sh.SnapshotEncoder()
	for round := 0; round < 3; round++ {
		conn, err := h.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var w countBytes
		if _, err := conn.Conn().PgConn().CopyTo(ctx, &w, "COPY (SELECT "+cols+" FROM s1) TO STDOUT"); err != nil {
			t.Fatal(err)
		}
		copyDur := time.Since(start)
		conn.Release()

		start = time.Now()
		rows := 0
		err = h.cache.Snapshotter.Snapshot(ctx, q, func(postgres.SnapshotInfo) error { return nil },
			func([][]byte) error { rows++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		queryDur := time.Since(start)

		start = time.Now()
		var bytes int
		var buf []byte
		err = h.cache.Snapshotter.Snapshot(ctx, q, func(postgres.SnapshotInfo) error { return nil },
			func(raw [][]byte) error { buf = enc.Append(buf[:0], raw); bytes += len(buf); return nil })
		if err != nil {
			t.Fatal(err)
		}
		encDur := time.Since(start)

		var prof *os.File
		if p := os.Getenv("VOLT_S1_CPUPROFILE"); p != "" && round == 2 {
			if prof, err = os.Create(p); err != nil {
				t.Fatal(err)
			}
			_ = pprof.StartCPUProfile(prof)
		}
		start = time.Now()
		e := h.newShapeOn(table, fmt.Sprintf("id > -%d", round+1))
		snapDur := time.Since(start)

		start = time.Now()
		got := 0
		o := volt.BeforeAll
		for {
			p, release, err := e.Locate(o)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Each(make([]byte, 64<<10), func([]byte) error { got++; return nil })
			release()
			if err != nil {
				t.Fatal(err)
			}
			o = p.End
			if p.AtHead || o == volt.SnapshotEnd {
				break
			}
		}
		readDur := time.Since(start)
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		t.Logf("%d rows (%d bytes encoded): COPY %v (%d bytes); query %v; query+encode %v; takeSnapshot %v; read back %v (%d messages)",
			rows, bytes, copyDur, w.n, queryDur, encDur, snapDur, readDur, got)
		if rows != n || got < n {
			t.Fatalf("round %d: the query read %d rows and the log holds %d messages, want %d rows", round, rows, got, n)
		}
	}
}

// envRows is the row count the environment variable name sets, or def.
func envRows(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type countBytes struct{ n int64 }

func (w *countBytes) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// newShapeOn creates the shape of table with the where clause and waits
// for its snapshot.
func (h *harness) newShapeOn(table *volt.Table, where string) *Entry {
	h.t.Helper()
	s, err := shape.New(shape.Definition{Schema: table.Schema, Table: table.Name, Where: where}, table)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := h.cache.GetOrCreate(context.Background(), s)
	if err != nil {
		h.t.Fatal(err)
	}
	<-e.Ready()
	if err := e.Err(); err != nil {
		h.t.Fatal(err)
	}
	return e
}

// TestShapeCreationFixedCost times the parts of creating a shape of a
// small table (10 rows; VOLT_S1_FIXED=<rows> for another size): the
// table lookup, adding it to the publication, and GetOrCreate until the
// snapshot is complete, for the first shape of the table and for later
// ones. The times are logged; the suite checks that each step works.
func TestShapeCreationFixedCost(t *testing.T) {
	n := envRows("VOLT_S1_FIXED", 10)
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {})
	ctx := context.Background()
	for round := 0; round < 4; round++ {
		name := fmt.Sprintf("f%d", round)
		pgtest.Exec(t, url, fmt.Sprintf(`CREATE TABLE %s (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`, name),
			fmt.Sprintf(`INSERT INTO %s SELECT g, g %% 1000, 'name ' || g, 'issue title number ' || g,
			CASE WHEN g %% 3 = 0 THEN 'closed' ELSE 'open' END, g %% 5 FROM generate_series(1, %d) g`, name, n),
			`VACUUM (ANALYZE) `+name)
		start := time.Now()
		table, err := h.insp.Table(ctx, "public", name)
		if err != nil {
			t.Fatal(err)
		}
		lookup := time.Since(start)
		start = time.Now()
		if err := h.cache.Publisher.AddTable(ctx, "public", name); err != nil {
			t.Fatal(err)
		}
		pub := time.Since(start)
		start = time.Now()
		h.newShapeOn(table, "")
		first := time.Since(start)
		start = time.Now()
		h.newShapeOn(table, "id > 0")
		second := time.Since(start)
		t.Logf("%d rows: table lookup %v, publish %v, first shape (published) %v, second shape %v", n, lookup, pub, first, second)
	}
}
