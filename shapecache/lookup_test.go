package shapecache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// gatedInspector counts catalog queries and holds each until released.
type gatedInspector struct {
	Inspector
	n       atomic.Int64
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedInspector) Table(ctx context.Context, schema, name string) (*volt.Table, error) {
	g.n.Add(1)
	g.entered <- struct{}{}
	<-g.gate
	return g.Inspector.Table(ctx, schema, name)
}

// Concurrent lookups of one table share one catalog query; a caller that
// gives up does not fail the others; nothing is kept after the query.
func TestTableLookupsShared(t *testing.T) {
	url := pgtest.NewDB(t)
	var gi *gatedInspector
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		gi = &gatedInspector{Inspector: c.Inspector, entered: make(chan struct{}, 1), gate: make(chan struct{})}
		c.Inspector = gi
	})
	h.exec(itemsDDL)
	const callers = 8
	type result struct {
		t   *volt.Table
		err error
	}
	results := make(chan result, callers)
	go func() {
		tb, err := h.cache.Table(context.Background(), "public", "items")
		results <- result{tb, err}
	}()
	<-gi.entered // the first caller's query is running
	for range callers - 1 {
		go func() {
			tb, err := h.cache.Table(context.Background(), "public", "items")
			results <- result{tb, err}
		}()
	}
	// A caller that gives up returns its context's error at once.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.cache.Table(gone, "public", "items"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled lookup: %v", err)
	}
	joined := func() int {
		c := &h.cache.lookups
		c.mu.Lock()
		defer c.mu.Unlock()
		if l := c.running[[2]string{"public", "items"}]; l != nil {
			return l.joined
		}
		return -1
	}
	if err := poll(func() bool { return joined() == callers }); err != nil {
		t.Fatalf("%d callers joined the running lookup, want %d", joined(), callers)
	}
	close(gi.gate)
	for range callers {
		r := <-results
		if r.err != nil || r.t == nil || r.t.Name != "items" || len(r.t.Columns) != 3 {
			t.Fatalf("shared lookup: %+v, %v", r.t, r.err)
		}
	}
	if n := gi.n.Load(); n != 1 {
		t.Fatalf("%d catalog queries for %d concurrent lookups, want 1", n, callers)
	}
	// The next lookup queries again, and sees the table as it is now.
	h.exec(`ALTER TABLE items ADD COLUMN note text`)
	go func() { <-gi.entered }()
	tb, err := h.cache.Table(context.Background(), "public", "items")
	if err != nil || len(tb.Columns) != 4 || gi.n.Load() != 2 {
		t.Fatalf("lookup after the first: %d columns, %d queries, %v", len(tb.Columns), gi.n.Load(), err)
	}
	go func() { <-gi.entered }()
	if _, err := h.cache.Table(context.Background(), "public", "nope"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("missing table: %v", err)
	}
}

// Successor rebuilds a removed shape on the table as it is now; a dropped
// table has none.
func TestSuccessor(t *testing.T) {
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), nil)
	h.exec(itemsDDL, `INSERT INTO items VALUES (1, 1, 'one'), (2, 2, 'two')`)
	old := h.newShape("owner_id = 1")
	h.exec(`ALTER TABLE items ADD COLUMN note text`)
	if !h.cache.Delete(old.Handle) {
		t.Fatal("delete failed")
	}
	ne, err := h.cache.Successor(context.Background(), old)
	if err != nil {
		t.Fatal(err)
	}
	if ne.Handle == old.Handle || ne.Shape.Def.Where != "owner_id = 1" || len(ne.Shape.Table.Columns) != 4 {
		t.Fatalf("successor %s of %s: where %q, %d columns", ne.Handle, old.Handle, ne.Shape.Def.Where, len(ne.Shape.Table.Columns))
	}
	<-ne.Ready()
	if r := rows(t, ne); len(r) != 1 || r[`"public"."items"/"1"`]["title"] != "one" {
		t.Fatalf("successor rows: %v", r)
	}
	if again, err := h.cache.Successor(context.Background(), old); err != nil || again != ne {
		t.Fatalf("second Successor: %v, %v (want the same shape)", again, err)
	}
	h.exec(`DROP TABLE items`)
	if _, err := h.cache.Successor(context.Background(), old); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("successor of a dropped table: %v", err)
	}
}

// Subset reads the shape's rows that match the subset, ordered and paged,
// and refuses a bad subset before any query.
func TestSubset(t *testing.T) {
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), nil)
	h.exec(itemsDDL, `INSERT INTO items SELECT g, g % 2, 'row ' || g FROM generate_series(1, 10) g`)
	e := h.newShape("owner_id = 1")
	one, two := 1, 2
	var snap volt.Snapshot
	var lsn uint64
	var got []string
	err := h.cache.Subset(context.Background(), e, Subset{Where: "id > $1", Params: map[string]string{"1": "2"}, OrderBy: "id DESC", Limit: &two, Offset: &one},
		func(s volt.Snapshot, at uint64) error { snap, lsn = s, at; return nil },
		func(raw [][]byte) error { got = append(got, string(raw[0])); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// owner 1 has ids 1, 3, 5, 7, 9; > 2, descending: 9, 7, 5, 3; offset 1, limit 2.
	if len(got) != 2 || got[0] != "7" || got[1] != "5" {
		t.Fatalf("subset rows %v", got)
	}
	if snap.Xmax == 0 || lsn == 0 {
		t.Fatalf("subset identity %+v at %d", snap, lsn)
	}
	zero := 0
	for _, tc := range []struct {
		sub   Subset
		field string
	}{
		{Subset{Limit: &one}, "order_by"},
		{Subset{OrderBy: "id", Limit: &zero}, "limit"},
		{Subset{Where: "nope = 1"}, "where"},
		{Subset{OrderBy: "nope"}, "order_by"},
	} {
		err := h.cache.Subset(context.Background(), e, tc.sub,
			func(volt.Snapshot, uint64) error { t.Fatal("query ran"); return nil },
			func([][]byte) error { return nil })
		var se *SubsetError
		if !errors.As(err, &se) || len(se.Fields[tc.field]) == 0 {
			t.Errorf("%+v: %v, want an error on %s", tc.sub, err, tc.field)
		}
	}
}
