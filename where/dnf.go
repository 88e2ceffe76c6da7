package where

import (
	"sort"
	"strconv"
)

// Plan is a compiled where clause with subqueries: its distinct
// subqueries (dependencies) and its disjunctive normal form, in which each
// literal slot is a position. It is immutable and safe for concurrent use.
type Plan struct {
	// Deps are the distinct subqueries, in order of first appearance.
	Deps []*Dependency
	// Negated tells, per dependency, whether it is used negated
	// (NOT IN); a dependency has one polarity at every position.
	Negated []bool
	// Disjuncts are the DNF's AND-groups: disjunct i holds positions
	// Disjuncts[i][0] … Disjuncts[i][len-1], consecutive and disjoint.
	Disjuncts [][]int
	// Positions are the DNF's literals, disjunct after disjunct.
	Positions []Position
	// DepPositions lists, per dependency, the (ascending) positions
	// that test it.
	DepPositions [][]int
	// DepDisjuncts lists, per dependency, the (ascending) disjuncts that
	// contain one of its positions.
	DepDisjuncts [][]int

	root *boolTree
}

// Position is one literal slot of the DNF.
type Position struct {
	Disjunct int
	Negated  bool
	// Dep is the dependency a subquery literal tests, -1 for an
	// ordinary literal.
	Dep int
	// Columns are a subquery literal's tag columns: the outer columns
	// on the left of IN, in order.
	Columns []string

	lit *literal
}

// Columns returns the outer columns the clause references (in ordinary
// literals and on the left of IN), sorted and unique.
func (p *Plan) Columns() []string {
	set := map[string]bool{}
	for _, pos := range p.Positions {
		for _, c := range pos.Columns {
			set[c] = true
		}
		if !pos.IsSubquery() {
			walk(pos.lit.expr, func(n node) {
				if c, ok := n.(*colNode); ok {
					set[c.name] = true
				}
			})
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// IsSubquery reports whether the position tests a dependency.
func (p Position) IsSubquery() bool { return p.Dep >= 0 }

// MaxDisjuncts bounds the DNF of a clause (as Electric does).
const MaxDisjuncts = 100

// term is a literal with its polarity, as the DNF holds it.
type term struct {
	lit *literal
	neg bool
}

// buildPlan expands root into its DNF and derives the per-dependency
// indexes.
func buildPlan(root *boolTree, deps []*Dependency) (*Plan, error) {
	if n := countDisjuncts(root, false); n > MaxDisjuncts {
		return nil, errorf("where clause too complex for DNF decomposition (%s disjuncts exceeds the limit of %d)", countText(n), MaxDisjuncts)
	}
	p := &Plan{
		Deps:         deps,
		Negated:      make([]bool, len(deps)),
		DepPositions: make([][]int, len(deps)),
		DepDisjuncts: make([][]int, len(deps)),
		root:         root,
	}
	for i, conj := range dnf(root, false) {
		var idx []int
		for _, t := range conj {
			pos := Position{Disjunct: i, Negated: t.neg, Dep: t.lit.dep, lit: t.lit}
			if t.lit.dep >= 0 {
				for _, c := range t.lit.cols {
					pos.Columns = append(pos.Columns, c.Name)
				}
				d := t.lit.dep
				p.Negated[d] = t.neg
				p.DepPositions[d] = append(p.DepPositions[d], len(p.Positions))
				if ds := p.DepDisjuncts[d]; len(ds) == 0 || ds[len(ds)-1] != i {
					p.DepDisjuncts[d] = append(p.DepDisjuncts[d], i)
				}
			}
			idx = append(idx, len(p.Positions))
			p.Positions = append(p.Positions, pos)
		}
		p.Disjuncts = append(p.Disjuncts, idx)
	}
	for _, ps := range p.DepPositions {
		sort.Ints(ps)
	}
	return p, nil
}

// saturate caps disjunct counts so that products cannot overflow.
const saturate = 1 << 30

// countDisjuncts returns how many disjuncts dnf(t, neg) has, capped at
// saturate.
func countDisjuncts(t *boolTree, neg bool) int {
	switch t.op {
	case opLit:
		return 1
	case opNot:
		return countDisjuncts(t.args[0], !neg)
	}
	or := (t.op == opOr) != neg
	n := 1
	if or {
		n = 0
	}
	for _, a := range t.args {
		c := countDisjuncts(a, neg)
		if or {
			n = min(n+c, saturate)
		} else {
			n = min(n*c, saturate)
		}
	}
	return n
}

func countText(n int) string {
	if n >= saturate {
		return "more than a billion"
	}
	return strconv.Itoa(n)
}

// dnf pushes NOT down to the literals (De Morgan) and expands t (negated
// if neg) into an OR of ANDs: OR concatenates its operands' disjuncts, AND
// takes their cross product, left to right.
func dnf(t *boolTree, neg bool) [][]term {
	switch t.op {
	case opLit:
		return [][]term{{{lit: t.lit, neg: neg}}}
	case opNot:
		return dnf(t.args[0], !neg)
	}
	if (t.op == opOr) != neg {
		var out [][]term
		for _, a := range t.args {
			out = append(out, dnf(a, neg)...)
		}
		return out
	}
	out := [][]term{nil}
	for _, a := range t.args {
		right := dnf(a, neg)
		next := make([][]term, 0, len(out)*len(right))
		for _, l := range out {
			for _, r := range right {
				next = append(next, append(append([]term(nil), l...), r...))
			}
		}
		out = next
	}
	return out
}
