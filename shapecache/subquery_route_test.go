package shapecache

import (
	"context"
	"strconv"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

// TestSubqueryRouteEvaluatesOnlyMatchingDependencies checks that a change
// to a subquery's table evaluates only the dependencies whose inner where
// it can match (sqIndex), not every subquery shape on the table: with
// 1,000 shapes `n IN (SELECT n FROM inner WHERE id = $1)` and one whose
// inner where is not indexable, an insert evaluates its id's shape and
// the unindexable one, an update that changes id both ids' shapes, with
// the same moves as evaluating all of them; the first change with a new
// relation definition evaluates every dependency on the table (so those
// it no longer fits are found).
func TestSubqueryRouteEvaluatesOnlyMatchingDependencies(t *testing.T) {
	outer, _ := evalTable(1)
	inner, rel := evalTable(2)
	tables := func(ref where.TableRef) (where.Table, error) { return whereTable(inner), nil }
	c := &Cache{Inspector: fixedInspector{inner}}
	const n = 1000
	add := func(handle, w string, params map[string]string) *Entry {
		t.Helper()
		s, err := shape.NewWithSubqueries(shape.Definition{Schema: "public", Table: outer.Name, Where: w, Params: params}, outer, tables)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.newSubqueryState(context.Background(), s, handle)
		if err != nil {
			t.Fatal(err)
		}
		e := newEntry(c, handle, s)
		e.sq = st
		e.snap = &postgres.SnapshotInfo{Snapshot: volt.Snapshot{Xmin: 1, Xmax: 1}, LSN: 1}
		views := []*where.View{where.NewView(st.deps[0].dep.Types)}
		st.views, st.cur = views, views
		c.mu.Lock()
		c.registerSubqueryLocked(e)
		c.mu.Unlock()
		return e
	}
	byID := map[int]*Entry{}
	for i := 1; i <= n; i++ {
		byID[i] = add("h"+strconv.Itoa(i), `n IN (SELECT n FROM `+inner.Name+` WHERE id = $1)`, map[string]string{"1": strconv.Itoa(i)})
	}
	scan := add("scan", `n IN (SELECT n FROM `+inner.Name+` WHERE n > 0)`, nil)

	lsn := uint64(10)
	route := func(ch volt.Change) (int, map[*Entry][]sqMove) {
		t.Helper()
		lsn++
		tx := &volt.Transaction{Xid: uint32(lsn), CommitLSN: lsn, EndLSN: lsn + 1, Changes: []volt.Change{ch}}
		moves := map[*Entry][]sqMove{}
		c.mu.Lock()
		defer c.mu.Unlock()
		before := c.sqApplies
		c.routeSubqueryLocked(tx, &tx.Changes[0], moves)
		return c.sqApplies - before, moves
	}
	row := func(id, v string) []volt.Value { return []volt.Value{{Text: id}, {Text: v}} }
	key := func(v string) where.ValueKey {
		k, err := where.Key(scan.sq.deps[0].dep.Types, where.Value{ptr(v)})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	checkMoves := func(step string, got map[*Entry][]sqMove, want map[*Entry][]sqMove) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: moves for %d shapes, want %d", step, len(got), len(want))
		}
		for e, wm := range want {
			gm := got[e]
			if len(gm) != len(wm) {
				t.Errorf("%s: shape %s: %d moves, want %d", step, e.Handle, len(gm), len(wm))
				continue
			}
			for i := range wm {
				if gm[i].key != wm[i].key || gm[i].in != wm[i].in || gm[i].d != wm[i].d {
					t.Errorf("%s: shape %s move %d: %+v, want %+v", step, e.Handle, i, gm[i], wm[i])
				}
			}
		}
	}

	// The first change of the relation reaches every dependency.
	evals, moves := route(volt.Change{Kind: volt.ChangeInsert, Relation: rel, New: row("7", "3")})
	if evals != n+1 {
		t.Errorf("first change: %d dependencies evaluated, want all %d", evals, n+1)
	}
	checkMoves("first insert", moves, map[*Entry][]sqMove{byID[7]: {{key: key("3"), in: true}}, scan: {{key: key("3"), in: true}}})

	evals, moves = route(volt.Change{Kind: volt.ChangeInsert, Relation: rel, New: row("500", "4")})
	if evals != 2 {
		t.Errorf("insert: %d dependencies evaluated, want 2 (id 500's and the unindexable one)", evals)
	}
	checkMoves("insert", moves, map[*Entry][]sqMove{byID[500]: {{key: key("4"), in: true}}, scan: {{key: key("4"), in: true}}})

	// An update that changes id reaches the old id's and the new id's.
	evals, moves = route(volt.Change{Kind: volt.ChangeUpdate, Relation: rel, Old: row("7", "3"), New: row("8", "3")})
	if evals != 3 {
		t.Errorf("update of id: %d dependencies evaluated, want 3 (ids 7 and 8, the unindexable one)", evals)
	}
	checkMoves("update of id", moves, map[*Entry][]sqMove{byID[7]: {{key: key("3"), in: false}}, byID[8]: {{key: key("3"), in: true}}})

	evals, moves = route(volt.Change{Kind: volt.ChangeDelete, Relation: rel, Old: row("8", "3")})
	if evals != 2 {
		t.Errorf("delete: %d dependencies evaluated, want 2", evals)
	}
	checkMoves("delete", moves, map[*Entry][]sqMove{byID[8]: {{key: key("3"), in: false}}, scan: {{key: key("3"), in: false}}})

	// A row of an id without a shape reaches only the unindexable one.
	evals, _ = route(volt.Change{Kind: volt.ChangeInsert, Relation: rel, New: row("5000", "-1")})
	if evals != 1 {
		t.Errorf("insert for an id without a shape: %d dependencies evaluated, want 1", evals)
	}

	// A removed shape is not reached.
	c.mu.Lock()
	c.unregisterSubqueryLocked(byID[9])
	c.mu.Unlock()
	if evals, moves = route(volt.Change{Kind: volt.ChangeInsert, Relation: rel, New: row("9", "-1")}); evals != 1 || len(moves) != 0 {
		t.Errorf("insert for an unregistered shape's id: %d evaluated, moves %v; want 1, none", evals, moves)
	}

	// A new relation definition: every dependency once, then by key again.
	rel2 := *rel
	if evals, _ = route(volt.Change{Kind: volt.ChangeInsert, Relation: &rel2, New: row("10", "-1")}); evals != n {
		t.Errorf("first change with a new relation: %d dependencies evaluated, want all %d", evals, n)
	}
	if evals, _ = route(volt.Change{Kind: volt.ChangeInsert, Relation: &rel2, New: row("11", "-1")}); evals != 2 {
		t.Errorf("second change with the new relation: %d dependencies evaluated, want 2", evals)
	}
}
