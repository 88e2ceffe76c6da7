package mutations

import (
	"slices"

	"github.com/voltsync/volt"
)

// maxReorder bounds the quadratic reordering.
const maxReorder = 2000

// orderRows reorders the row mutations of one client transaction so that
// non-deferrable foreign keys hold after every statement: inserts and
// updates of a parent table before those of its children, deletes of
// children before deletes of their parents, and inserts or updates of
// children (which may move them away) before deletes of parents.
// Deferrable foreign keys are left to SET CONSTRAINTS ALL DEFERRED.
//
// Mutations of one table keep their order; when that makes the constraints
// cyclic, only mutations of the same row keep their order. When even that
// is cyclic, or the transaction has more than maxReorder row mutations,
// the client's order is kept.
func orderRows(ops []*rowOp, fks []fkEdge) []*rowOp {
	parents := strictParents(fks)
	if len(parents) == 0 || len(ops) < 2 || len(ops) > maxReorder {
		return ops
	}
	for _, sameRowOnly := range []bool{false, true} {
		if out, ok := topoStable(ops, edges(ops, parents, sameRowOnly)); ok {
			return out
		}
	}
	return ops
}

// edges returns, for each mutation, the mutations that must follow it.
func edges(ops []*rowOp, parents map[string][]string, sameRowOnly bool) [][]int {
	succ := make([][]int, len(ops))
	for i := range ops {
		for j := i + 1; j < len(ops); j++ {
			aFirst, ordered := mustPrecede(ops[i], ops[j], parents, sameRowOnly)
			switch {
			case ordered && aFirst:
				succ[i] = append(succ[i], j)
			case ordered:
				succ[j] = append(succ[j], i)
			}
		}
	}
	return succ
}

// mustPrecede reports whether a and b (a earlier) are ordered, and if so
// whether a must come first.
func mustPrecede(a, b *rowOp, parents map[string][]string, sameRowOnly bool) (aFirst, ordered bool) {
	ta, tb := a.t.qualified(), b.t.qualified()
	if ta == tb {
		return true, !sameRowOnly || sharesRow(a, b)
	}
	aDel, bDel := a.m.Op == volt.OpDelete, b.m.Op == volt.OpDelete
	switch {
	case slices.Contains(parents[tb], ta): // a is b's parent
		if aDel && !bDel {
			return false, true // child moves away before the parent goes
		}
		return !aDel, aDel == bDel
	case slices.Contains(parents[ta], tb): // b is a's parent
		if bDel && !aDel {
			return true, true
		}
		return aDel, aDel == bDel
	}
	return false, false
}

// sharesRow reports whether two mutations of one table may touch the same
// row (always, when a key is unknown).
func sharesRow(a, b *rowOp) bool {
	if len(a.ids) == 0 || len(b.ids) == 0 {
		return true
	}
	for _, id := range a.ids {
		if slices.Contains(b.ids, id) {
			return true
		}
	}
	return false
}

// strictParents maps each child table to the parents it references through
// non-deferrable foreign keys (self-references excluded).
func strictParents(fks []fkEdge) map[string][]string {
	out := map[string][]string{}
	for _, e := range fks {
		if !e.deferrable && e.child != e.parent {
			out[e.child] = append(out[e.child], e.parent)
		}
	}
	return out
}

// topoStable sorts by the edges, taking the earliest ready mutation each
// time; it reports false on a cycle.
func topoStable(ops []*rowOp, succ [][]int) ([]*rowOp, bool) {
	indeg := make([]int, len(ops))
	for _, ss := range succ {
		for _, s := range ss {
			indeg[s]++
		}
	}
	out := make([]*rowOp, 0, len(ops))
	done := make([]bool, len(ops))
	for len(out) < len(ops) {
		next := -1
		for i := range ops {
			if !done[i] && indeg[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, false
		}
		done[next] = true
		out = append(out, ops[next])
		for _, s := range succ[next] {
			indeg[s]--
		}
	}
	return out, true
}
