package routing

import (
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/where"
)

// testColumns is the table the tests' shapes are over.
var testColumns = []where.Column{
	{Name: "id", Type: "int8"},
	{Name: "a", Type: "int4"},
	{Name: "t", Type: "text"},
	{Name: "u", Type: "uuid"},
	{Name: "b", Type: "bool"},
}

func testRelation(id uint32) *volt.Relation {
	rel := &volt.Relation{ID: id, Schema: "public", Name: "items"}
	for _, c := range testColumns {
		rel.Columns = append(rel.Columns, volt.RelationColumn{Name: c.Name})
	}
	return rel
}

func mustParse(tb testing.TB, clause string) *where.Expr {
	tb.Helper()
	if clause == "" {
		return nil
	}
	e, err := where.Parse(clause, testColumns, nil)
	if err != nil {
		tb.Fatalf("Parse(%q): %v", clause, err)
	}
	return e
}

// row builds a replicated row from "col=value" pairs; absent columns are NULL.
func row(pairs ...string) []volt.Value {
	vals := make([]volt.Value, len(testColumns))
	for i := range vals {
		vals[i].Null = true
	}
	for _, p := range pairs {
		for i, c := range testColumns {
			if len(p) > len(c.Name) && p[:len(c.Name)+1] == c.Name+"=" {
				vals[i] = volt.Value{Text: p[len(c.Name)+1:]}
			}
		}
	}
	return vals
}

// matched returns the sorted shapes MatchChange yields, failing on duplicates.
func matched(t *testing.T, ix *Index[string], ch *volt.Change) []string {
	t.Helper()
	var got []string
	ix.MatchChange(ch, func(s string) { got = append(got, s) })
	slices.Sort(got)
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("duplicates in %v", got)
	}
	return got
}

func TestIndex(t *testing.T) {
	rel := testRelation(1)
	var ix Index[string]
	ix.Add("a5", 1, mustParse(t, "a = 5"))
	ix.Add("a6", 1, mustParse(t, "a = 6"))
	ix.Add("a5too", 1, mustParse(t, "a = 5 AND t LIKE 'x%'"))
	ix.Add("in", 1, mustParse(t, "a IN (5, 7) OR t = 'x'"))
	ix.Add("like", 1, mustParse(t, "t LIKE 'x%'"))
	ix.Add("all", 1, nil)
	ix.Add("never", 1, mustParse(t, "a = NULL"))
	ix.Add("b", 1, mustParse(t, "b"))
	ix.Add("other", 2, mustParse(t, "a = 5"))

	tests := []struct {
		name string
		ch   volt.Change
		want []string
	}{
		{"insert a=5", volt.Change{Kind: volt.ChangeInsert, New: row("a=5")}, []string{"a5", "a5too", "all", "in", "like"}},
		{"insert a=6", volt.Change{Kind: volt.ChangeInsert, New: row("a=6")}, []string{"a6", "all", "like"}},
		{"insert t=x", volt.Change{Kind: volt.ChangeInsert, New: row("t=x", "b=t")}, []string{"all", "b", "in", "like"}},
		{"insert b=false", volt.Change{Kind: volt.ChangeInsert, New: row("b=f")}, []string{"all", "like"}},
		{"delete a=7", volt.Change{Kind: volt.ChangeDelete, Old: row("a=7")}, []string{"all", "in", "like"}},
		{"update 5 to 6", volt.Change{Kind: volt.ChangeUpdate, Old: row("a=5"), New: row("a=6")}, []string{"a5", "a5too", "a6", "all", "in", "like"}},
		{"update 5 to 7", volt.Change{Kind: volt.ChangeUpdate, Old: row("a=5"), New: row("a=7", "t=x")}, []string{"a5", "a5too", "all", "in", "like"}},
		{"update 5 stays", volt.Change{Kind: volt.ChangeUpdate, Old: row("a=5", "t=y"), New: row("a=5", "t=z")}, []string{"a5", "a5too", "all", "in", "like"}},
		{"a is NULL", volt.Change{Kind: volt.ChangeInsert, New: row("t=q")}, []string{"all", "like"}},
		{"unparsable a", volt.Change{Kind: volt.ChangeInsert, New: row("a=five")}, []string{"all", "like"}},
		{"truncate", volt.Change{Kind: volt.ChangeTruncate}, nil},
	}
	for _, tt := range tests {
		tt.ch.Relation = rel
		if got := matched(t, &ix, &tt.ch); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	other := volt.Change{Kind: volt.ChangeInsert, Relation: testRelation(2), New: row("a=5")}
	if got := matched(t, &ix, &other); !slices.Equal(got, []string{"other"}) {
		t.Errorf("relation 2: got %v", got)
	}
	unknown := volt.Change{Kind: volt.ChangeInsert, Relation: testRelation(3), New: row("a=5")}
	if got := matched(t, &ix, &unknown); got != nil {
		t.Errorf("relation 3: got %v", got)
	}

	ix.Remove("a5")
	ix.Remove("like")
	ix.Remove("nope")
	ix.Add("a6", 1, mustParse(t, "a = 5")) // replaces
	ch := volt.Change{Kind: volt.ChangeInsert, Relation: rel, New: row("a=5")}
	if got, want := matched(t, &ix, &ch), []string{"a5too", "a6", "all", "in"}; !slices.Equal(got, want) {
		t.Errorf("after removals: got %v, want %v", got, want)
	}
	if got, want := ix.Len(), 7; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
}

func TestIndexMatchRows(t *testing.T) {
	var ix Index[int]
	ix.Add(1, 7, mustParse(t, "u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'"))
	ix.Add(2, 7, mustParse(t, "u IS NULL"))
	var got []int
	old := where.MapRow{"u": ptr("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")}
	ix.Match(7, old, nil, func(s int) { got = append(got, s) })
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 2}) {
		t.Errorf("got %v", got)
	}
	got = nil
	ix.Match(7, nil, nil, func(s int) { got = append(got, s) })
	if got != nil {
		t.Errorf("no rows: got %v", got)
	}
}

func ptr(s string) *string { return &s }

// TestIndexRemoveDuringMatch removes shapes from inside fn, as the cache
// does for shapes whose schema changed: the one yielded or not, and
// another one.
func TestIndexRemoveDuringMatch(t *testing.T) {
	clauses := []string{"a = 1", "a IN (1, 2)", "a = 1 OR t = 'x'", "t = 'x'", "t LIKE '%'", "", "b", "a = 2 OR b",
		"t LIKE 'x%'", "a = 1 AND b", "a = ANY('{1,2,3}')", "t = 'x' OR b"}
	ch := volt.Change{Kind: volt.ChangeUpdate, Relation: testRelation(1), Old: row("a=1", "t=x"), New: row("a=2", "b=t")}
	for other := range clauses {
		for _, removeYielded := range []bool{true, false} {
			var ix Index[string]
			for _, c := range clauses {
				ix.Add(c, 1, mustParse(t, c))
			}
			got := map[string]int{}
			removedEarly := ""
			ix.MatchChange(&ch, func(s string) {
				got[s]++
				if removeYielded {
					ix.Remove(s)
				}
				if o := clauses[other]; got[o] == 0 && removedEarly == "" {
					removedEarly = o
					ix.Remove(o)
				}
			})
			for _, c := range clauses {
				if n := got[c]; n != 1 && !(n == 0 && c == removedEarly) {
					t.Errorf("removing %q (and yielded shapes: %v): %q yielded %d times", clauses[other], removeYielded, c, n)
				}
			}
			if removeYielded && (ix.Len() != 0 || len(ix.rels) != 0) {
				t.Errorf("index not empty: %d shapes, %d relations", ix.Len(), len(ix.rels))
			}
		}
	}
}

func TestIndexRemoveFreesMemory(t *testing.T) {
	var ix Index[int]
	const n = 1000
	for k := 0; k < n; k++ {
		ix.Add(k, 1, mustParse(t, fmt.Sprintf("a = %d OR t = 'k%d'", k/2, k)))
	}
	ix.Add(-1, 1, mustParse(t, "t LIKE 'x%'"))
	r := ix.rels[1]
	if len(r.cols) != 2 || len(r.cols[0].keys)+len(r.cols[1].keys) != n/2+n {
		t.Fatalf("unexpected layout: %d columns", len(r.cols))
	}
	for k := 0; k < n; k += 2 {
		ix.Remove(k)
	}
	for _, c := range r.cols {
		for key, b := range c.keys {
			if len(b.refs) == 0 {
				t.Errorf("empty bucket %s=%s kept", c.name, key)
			}
		}
	}
	for k := 1; k < n; k += 2 {
		ix.Remove(k)
	}
	if len(r.cols) != 0 {
		t.Errorf("%d columns kept after their last shape", len(r.cols))
	}
	ix.Remove(-1)
	if len(ix.rels) != 0 || len(ix.shapes) != 0 || cap(r.scan) > 16 {
		t.Errorf("relation kept: %d relations, %d shapes, scan capacity %d", len(ix.rels), len(ix.shapes), cap(r.scan))
	}
}

func TestIndexMatchDoesNotAllocate(t *testing.T) {
	var ix Index[int]
	for k := 0; k < 100; k++ {
		ix.Add(k, 1, mustParse(t, fmt.Sprintf("a = %d", k)))
	}
	ix.Add(-1, 1, mustParse(t, "t LIKE 'x%'"))
	ch := volt.Change{Kind: volt.ChangeUpdate, Relation: testRelation(1), Old: row("a=5"), New: row("a=6")}
	n := 0
	if a := testing.AllocsPerRun(100, func() { n = 0; ix.MatchChange(&ch, func(int) { n++ }) }); a != 0 {
		t.Errorf("MatchChange allocates %v times", a)
	}
	if n != 3 {
		t.Errorf("yielded %d shapes, want 3", n)
	}
	var dst []int
	if a := testing.AllocsPerRun(100, func() { dst = ix.AppendChange(dst[:0], &ch) }); a != 0 {
		t.Errorf("AppendChange allocates %v times", a)
	}
	if slices.Sort(dst); !slices.Equal(dst, []int{-1, 5, 6}) {
		t.Errorf("AppendChange = %v", dst)
	}
}

// templates are the clause forms of the property test; {k} is replaced by
// a small integer, {s} by a short string, {u} by a uuid.
var templates = []string{
	"a = {k}", "{k} = a", "a IN ({k}, 2, NULL)", "a = ANY(ARRAY[{k}, 3])", "a::int8 = {k}",
	"t = '{s}'", "t IN ('{s}', 'q')", "t::varchar = '{s}'",
	"u = '{u}'", "b", "NOT b", "b = false", "b IS TRUE",
	"a = {k} AND t = '{s}'", "a = {k} OR t = '{s}'", "(a = {k} OR b) AND t LIKE '{s}%'",
	"a = NULL", "t LIKE '{s}%'", "a > {k}", "NOT (a = {k})", "a IS NULL", "",
}

var uuids = []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}

func randomRow(r *rand.Rand) []volt.Value {
	if r.Intn(6) == 0 {
		return nil
	}
	vals := []string{
		strconv.Itoa(r.Intn(100)),
		strconv.Itoa(r.Intn(6)),
		[]string{"x", "y", "xy", "q", ""}[r.Intn(5)],
		uuids[r.Intn(2)],
		[]string{"t", "f"}[r.Intn(2)],
	}
	out := make([]volt.Value, len(vals))
	for i, v := range vals {
		out[i] = volt.Value{Text: v, Null: r.Intn(8) == 0}
	}
	return out
}

type testShape struct {
	id     int
	rel    uint32
	clause string
	f      *where.Expr
}

// matchesRow reports what the shape cache decides: Matches on a present row.
func (s *testShape) matchesRow(rel *volt.Relation, vals []volt.Value) bool {
	if vals == nil {
		return false
	}
	if s.f == nil {
		return true
	}
	m, _ := s.f.Matches(where.MapRow(rowMap(rel, vals)))
	return m
}

func rowMap(rel *volt.Relation, vals []volt.Value) map[string]*string {
	m := map[string]*string{}
	for i, c := range rel.Columns {
		if !vals[i].Null {
			m[c.Name] = &vals[i].Text
		}
	}
	return m
}

// TestIndexAgainstBruteForce adds and removes random shapes and checks
// that every shape whose clause matches the old or new row is yielded,
// once, and that nothing of another relation is.
func TestIndexAgainstBruteForce(t *testing.T) {
	seed := int64(7) // fixed for CI; ROUTING_SEED=random or a number explores
	switch s := os.Getenv("ROUTING_SEED"); s {
	case "":
	case "random":
		seed = time.Now().UnixNano()
	default:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with ROUTING_SEED=%d)", seed, seed)
	r := rand.New(rand.NewSource(seed))
	rels := []*volt.Relation{testRelation(1), testRelation(2)}
	var ix Index[*testShape]
	live := map[int]*testShape{}
	candidates, relevant := 0, 0
	for step := 0; step < 3000; step++ {
		if r.Intn(3) == 0 || len(live) < 20 {
			s := &testShape{id: step, rel: uint32(1 + r.Intn(2))}
			s.clause = strings.NewReplacer("{k}", strconv.Itoa(r.Intn(6)), "{s}", []string{"x", "y", "q"}[r.Intn(3)],
				"{u}", uuids[r.Intn(3)]).Replace(templates[r.Intn(len(templates))])
			s.f = mustParse(t, s.clause)
			live[s.id] = s
			ix.Add(s, s.rel, s.f)
		}
		if r.Intn(4) == 0 {
			for id, s := range live {
				ix.Remove(s)
				delete(live, id)
				break
			}
		}
		rel := rels[r.Intn(2)]
		ch := volt.Change{Kind: volt.ChangeUpdate, Relation: rel, Old: randomRow(r), New: randomRow(r)}
		got := map[*testShape]int{}
		fn := func(s *testShape) { got[s]++ }
		switch step % 3 {
		case 0:
			ix.MatchChange(&ch, fn)
		case 1:
			ix.Match(rel.ID, asRow(rel, ch.Old), asRow(rel, ch.New), fn)
		default:
			for _, s := range ix.AppendChange(nil, &ch) {
				fn(s)
			}
		}
		for s, n := range got {
			if n != 1 || s.rel != rel.ID || live[s.id] != s {
				t.Fatalf("seed %d step %d: yielded %q (relation %d, live %v) %d times for relation %d",
					seed, step, s.clause, s.rel, live[s.id] == s, n, rel.ID)
			}
		}
		candidates += len(got)
		for _, s := range live {
			if s.rel != rel.ID || !s.matchesRow(rel, ch.Old) && !s.matchesRow(rel, ch.New) {
				continue
			}
			relevant++
			if got[s] == 0 {
				t.Fatalf("seed %d step %d: %q matches old %v or new %v but was not yielded",
					seed, step, s.clause, rowMapString(rel, ch.Old), rowMapString(rel, ch.New))
			}
		}
	}
	if ix.Len() != len(live) {
		t.Errorf("Len = %d, want %d", ix.Len(), len(live))
	}
	t.Logf("candidates %d, matching %d", candidates, relevant)
}

func asRow(rel *volt.Relation, vals []volt.Value) where.Row {
	if vals == nil {
		return nil
	}
	return where.MapRow(rowMap(rel, vals))
}

func rowMapString(rel *volt.Relation, vals []volt.Value) string {
	if vals == nil {
		return "none"
	}
	out := ""
	for k, v := range rowMap(rel, vals) {
		out += k + "=" + *v + " "
	}
	return out
}
