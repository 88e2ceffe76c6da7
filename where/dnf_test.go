package where

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/voltsync/volt/internal/testseed"
)

// describe renders a plan's DNF compactly: disjuncts separated by " | ",
// literals as SQL (subqueries as "col∈sqD"), negated ones with "¬".
func describe(p *Plan) string {
	var ds []string
	for _, ps := range p.Disjuncts {
		var ls []string
		for _, q := range ps {
			pos := p.Positions[q]
			s := ""
			if pos.Negated {
				s = "¬"
			}
			if pos.IsSubquery() {
				s += fmt.Sprintf("%s∈sq%d", strings.Join(pos.Columns, ","), pos.Dep)
			} else {
				var b strings.Builder
				pos.lit.expr.sql(&b)
				s += b.String()
			}
			ls = append(ls, s)
		}
		ds = append(ds, strings.Join(ls, " & "))
	}
	return strings.Join(ds, " | ")
}

func TestDNFWorkedExamples(t *testing.T) {
	// subqueries.md §3, first example.
	p, err := sqParse("x IN (SELECT id FROM parent) AND (y IN (SELECT value FROM parent) OR z = 5)", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(p), `x∈sq0 & y∈sq1 | x∈sq0 & ("z" = '5'::int4)`; got != want {
		t.Errorf("DNF %s, want %s", got, want)
	}
	if got := fmt.Sprint(p.Disjuncts); got != "[[0 1] [2 3]]" {
		t.Errorf("Disjuncts %s", got)
	}
	if got := fmt.Sprint(p.DepPositions); got != "[[0 2] [1]]" {
		t.Errorf("DepPositions %s", got)
	}
	if got := fmt.Sprint(p.DepDisjuncts); got != "[[0 1] [0]]" {
		t.Errorf("DepDisjuncts %s", got)
	}
	if got := fmt.Sprint(p.Negated); got != "[false false]" {
		t.Errorf("Negated %s", got)
	}
	for q, want := range []int{0, 0, 1, 1} {
		if p.Positions[q].Disjunct != want {
			t.Errorf("position %d in disjunct %d, want %d", q, p.Positions[q].Disjunct, want)
		}
	}
	// Second example: NOT pushed down with De Morgan.
	p, err = sqParse("NOT (a = 7 OR y IN (SELECT id FROM parent))", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(p), `¬("a" = '7'::int4) & ¬y∈sq0`; got != want {
		t.Errorf("DNF %s, want %s", got, want)
	}
	if !p.Negated[0] || fmt.Sprint(p.DepPositions) != "[[1]]" || fmt.Sprint(p.DepDisjuncts) != "[[0]]" {
		t.Errorf("Negated %v DepPositions %v DepDisjuncts %v", p.Negated, p.DepPositions, p.DepDisjuncts)
	}
}

func TestDNFNormalises(t *testing.T) {
	tests := []struct{ clause, want string }{
		{"x IN (SELECT id FROM parent)", "x∈sq0"},
		{"NOT NOT x IN (SELECT id FROM parent)", "x∈sq0"},
		{"x NOT IN (SELECT id FROM parent)", "¬x∈sq0"},
		{"x IN (SELECT id FROM parent) OR flag", `x∈sq0 | "flag"`},
		{"x IN (SELECT id FROM parent) AND name = 'a'", `x∈sq0 & ("name" = 'a'::text)`},
		// NOT (A AND B) = NOT A OR NOT B
		{"NOT (x IN (SELECT id FROM parent) AND flag)", `¬x∈sq0 | ¬"flag"`},
		// AND's cross product, left to right
		{"(x IN (SELECT id FROM parent) OR a = 1) AND (y IN (SELECT value FROM parent) OR a = 2)",
			`x∈sq0 & y∈sq1 | x∈sq0 & ("a" = '2'::int4) | ("a" = '1'::int4) & y∈sq1 | ("a" = '1'::int4) & ("a" = '2'::int4)`},
		// nested ANDs and ORs flatten
		{"((x IN (SELECT id FROM parent) OR a = 1) OR (a = 2 OR a = 3)) AND flag",
			`x∈sq0 & "flag" | ("a" = '1'::int4) & "flag" | ("a" = '2'::int4) & "flag" | ("a" = '3'::int4) & "flag"`},
		{"NOT (NOT (x IN (SELECT id FROM parent) OR a = 1) AND NOT flag)", `x∈sq0 | ("a" = '1'::int4) | "flag"`},
		{"(user_id, team_id) IN (SELECT user_id, team_id FROM memberships) OR x IN (SELECT id FROM parent)", "user_id,team_id∈sq0 | x∈sq1"},
	}
	for _, tt := range tests {
		p, err := sqParse(tt.clause, nil)
		if err != nil {
			t.Errorf("ParsePlan(%q): %v", tt.clause, err)
			continue
		}
		if got := describe(p); got != tt.want {
			t.Errorf("DNF of %q\n  got  %s\n  want %s", tt.clause, got, tt.want)
		}
		// Positions are consecutive per disjunct and not shared.
		next := 0
		for i, ps := range p.Disjuncts {
			for _, q := range ps {
				if q != next || p.Positions[q].Disjunct != i {
					t.Errorf("%q: disjunct %d holds position %d, want %d", tt.clause, i, q, next)
				}
				next++
			}
		}
		if next != len(p.Positions) {
			t.Errorf("%q: %d positions in disjuncts, %d in all", tt.clause, next, len(p.Positions))
		}
	}
}

// TestDNFEquivalent checks that the DNF keeps SQL's three-valued meaning:
// for random boolean combinations of ordinary literals (with NULLs), "some
// disjunct has all its active conditions true" equals Matches of the
// original clause, row by row.
func TestDNFEquivalent(t *testing.T) {
	r := testseed.Rand(t, 0)
	cols := []Column{{Name: "a", Type: "int4"}, {Name: "b", Type: "int4"}, {Name: "c", Type: "bool"}}
	var rows []MapRow
	vals := []*string{nil, ptr("0"), ptr("1"), ptr("2")}
	bools := []*string{nil, ptr("t"), ptr("f")}
	for _, a := range vals {
		for _, b := range vals {
			for _, c := range bools {
				rows = append(rows, MapRow{"a": a, "b": b, "c": c})
			}
		}
	}
	for i := 0; i < 300; i++ {
		clause := randomBool(r, 3)
		e, err := Parse(clause, cols, nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", clause, err)
		}
		p, err := ParsePlan(clause, cols, nil, nil)
		if err != nil {
			if strings.Contains(err.Error(), "too complex") {
				continue
			}
			t.Fatalf("ParsePlan(%q): %v", clause, err)
		}
		for _, row := range rows {
			want, _ := e.Matches(row)
			conds, err := p.ActiveConditions(row, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Includes(conds); got != want {
				t.Fatalf("%q on %v: DNF %s gives %v, Matches %v (conditions %v)", clause, rowValues(dbRow{vals: row}, []string{"a", "b", "c"}), describe(p), got, want, conds)
			}
		}
	}
}

func ptr(s string) *string { return &s }

func randomBool(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(4) == 0 {
		switch r.IntN(4) {
		case 0:
			return "c"
		case 1:
			return fmt.Sprintf("a = %d", r.IntN(3))
		case 2:
			return fmt.Sprintf("b < %d", r.IntN(3))
		}
		return "a = b"
	}
	switch r.IntN(3) {
	case 0:
		return "NOT (" + randomBool(r, depth-1) + ")"
	case 1:
		return "(" + randomBool(r, depth-1) + " AND " + randomBool(r, depth-1) + ")"
	}
	return "(" + randomBool(r, depth-1) + " OR " + randomBool(r, depth-1) + ")"
}
