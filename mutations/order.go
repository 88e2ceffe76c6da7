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
// children before deletes of their parents. Deferrable foreign keys are
// left to SET CONSTRAINTS ALL DEFERRED. Mutations of the same table keep
// their order, and so does everything no foreign key relates. When the
// constraints form a cycle, or the transaction has more than maxReorder
// row mutations, the client's order is kept.
func orderRows(ops []*rowOp, fks []fkEdge) []*rowOp {
	parents := strictParents(fks)
	if len(parents) == 0 || len(ops) < 2 || len(ops) > maxReorder {
		return ops
	}
	n := len(ops)
	succ := make([][]int, n)
	indeg := make([]int, n)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if first, ok := mustPrecede(ops[i], ops[j], parents); ok {
				a, b := i, j
				if !first {
					a, b = j, i
				}
				succ[a] = append(succ[a], b)
				indeg[b]++
			}
		}
	}
	return topoStable(ops, succ, indeg)
}

// mustPrecede reports whether a and b (a earlier) are ordered, and if so
// whether a must come first.
func mustPrecede(a, b *rowOp, parents map[string][]string) (aFirst, ordered bool) {
	ta, tb := a.t.qualified(), b.t.qualified()
	if ta == tb {
		return true, true
	}
	aDel, bDel := a.m.Op == volt.OpDelete, b.m.Op == volt.OpDelete
	if aDel != bDel {
		return false, false
	}
	switch {
	case slices.Contains(parents[tb], ta): // a is b's parent
		return !aDel, true
	case slices.Contains(parents[ta], tb): // b is a's parent
		return aDel, true
	}
	return false, false
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
// time; on a cycle it returns ops unchanged.
func topoStable(ops []*rowOp, succ [][]int, indeg []int) []*rowOp {
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
			return ops
		}
		done[next] = true
		out = append(out, ops[next])
		for _, s := range succ[next] {
			indeg[s]--
		}
	}
	return out
}
