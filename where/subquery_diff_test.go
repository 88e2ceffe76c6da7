package where

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// The differential test of subquery plans: random small tables child
// (outer), parent (inner) and grand (nested inner), random accepted
// clauses, and for every child row the Go side (Tags, ActiveConditions,
// Includes with views read from the dependencies' SQL) must equal what
// Postgres computes with the rendered SQL (TagSQL and ConditionSQL with
// live subqueries, WhereSQL, ConditionSQL and DisjunctSQL against the
// views as array parameters).

var sqdTables = []struct {
	name string
	cols []Column
}{
	{"grand", []Column{{Name: "id", Type: "int4"}, {Name: "g1", Type: "int4"}, {Name: "g2", Type: "text"}}},
	{"parent", []Column{{Name: "id", Type: "int4"}, {Name: "p1", Type: "int4"}, {Name: "p2", Type: "text"},
		{Name: "pg", Type: "int4"}, {Name: "pn", Type: "numeric"}, {Name: "pb", Type: "bool"}}},
	{"child", []Column{{Name: "id", Type: "int4"}, {Name: "c1", Type: "int4"}, {Name: "c2", Type: "text"},
		{Name: "c3", Type: "int4"}, {Name: "cn", Type: "numeric"}, {Name: "cb", Type: "bool"}}},
}

func sqdLookup(ref TableRef) (Table, error) {
	for _, t := range sqdTables {
		if t.name == ref.Name && (ref.Schema == "" || ref.Schema == "public") {
			return Table{Schema: "public", Name: t.name, Columns: t.cols}, nil
		}
	}
	return Table{}, fmt.Errorf("relation %s does not exist", ref)
}

// sqdValue draws a column value in Postgres input syntax, or nil.
func sqdValue(r *rand.Rand, typ string) *string {
	if r.IntN(6) == 0 {
		return nil
	}
	var v string
	switch typ {
	case "int4":
		v = strconv.Itoa(r.IntN(5))
	case "text":
		v = []string{"a", "b", "c", "a ", "it's", "a:b"}[r.IntN(6)]
	case "numeric":
		v = []string{"1", "1.0", "1.50", "1.5", "2"}[r.IntN(5)]
	case "bool":
		v = []string{"t", "f"}[r.IntN(2)]
	}
	return &v
}

func sqdFill(t *testing.T, ctx context.Context, conn *pgx.Conn, r *rand.Rand) {
	t.Helper()
	sizes := map[string]int{"grand": 6, "parent": 12, "child": 30}
	for _, tb := range sqdTables {
		mustExec(t, ctx, conn, "TRUNCATE "+tb.name)
		var tuples []string
		for i := 1; i <= sizes[tb.name]; i++ {
			vals := []string{strconv.Itoa(i)}
			for _, c := range tb.cols[1:] {
				if v := sqdValue(r, c.Type); v != nil {
					vals = append(vals, quoteLiteral(*v))
				} else {
					vals = append(vals, "NULL")
				}
			}
			tuples = append(tuples, "("+strings.Join(vals, ", ")+")")
		}
		mustExec(t, ctx, conn, "INSERT INTO "+tb.name+" VALUES "+strings.Join(tuples, ", "))
	}
}

// sqdQueryText runs sql and returns its rows as text (raw output
// functions, as replication sends them), nil for NULL.
func sqdQueryText(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) [][]*string {
	t.Helper()
	res := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	var out [][]*string
	for _, raw := range res.Rows {
		row := make([]*string, len(raw))
		for i, b := range raw {
			if b != nil {
				s := string(b)
				row[i] = &s
			}
		}
		out = append(out, row)
	}
	return out
}

// sqdRows reads a table's rows (ordered by id) as MapRows.
func sqdRows(t *testing.T, ctx context.Context, conn *pgx.Conn, table string) []MapRow {
	t.Helper()
	var cols []Column
	for _, tb := range sqdTables {
		if tb.name == table {
			cols = tb.cols
		}
	}
	var names []string
	for _, c := range cols {
		names = append(names, quoteIdent(c.Name))
	}
	var out []MapRow
	for _, raw := range sqdQueryText(t, ctx, conn, "SELECT "+strings.Join(names, ", ")+" FROM "+table+" ORDER BY id") {
		row := MapRow{}
		for i, c := range cols {
			row[c.Name] = raw[i]
		}
		out = append(out, row)
	}
	return out
}

// sqdGen generates clauses of the accepted forms; literals go to $n
// parameters now and then.
type sqdGen struct {
	r      *rand.Rand
	params map[string]string
}

func (g *sqdGen) lit(typ string) string {
	v := sqdValue(g.r, typ)
	if v == nil {
		v = ptr("1")
		if typ == "text" {
			v = ptr("a")
		}
	}
	if g.r.IntN(4) == 0 {
		n := strconv.Itoa(len(g.params) + 1)
		g.params[n] = *v
		return "$" + n
	}
	if typ == "int4" {
		return *v
	}
	return quoteLiteral(*v)
}

func (g *sqdGen) bool(depth int, leaf func() string) string {
	if depth == 0 || g.r.IntN(3) == 0 {
		return leaf()
	}
	switch g.r.IntN(4) {
	case 0:
		return "NOT (" + g.bool(depth-1, leaf) + ")"
	case 1:
		return "(" + g.bool(depth-1, leaf) + " OR " + g.bool(depth-1, leaf) + ")"
	}
	return "(" + g.bool(depth-1, leaf) + " AND " + g.bool(depth-1, leaf) + ")"
}

func (g *sqdGen) in(left, sub string) string {
	if g.r.IntN(4) == 0 {
		return left + " NOT IN (" + sub + ")"
	}
	return left + " IN (" + sub + ")"
}

func (g *sqdGen) grandWhere() string {
	if g.r.IntN(3) == 0 {
		return ""
	}
	return " WHERE " + g.bool(1, func() string {
		return []func() string{
			func() string { return "g1 > " + g.lit("int4") },
			func() string { return "g2 = " + g.lit("text") },
			func() string { return "g2 IS NULL" },
		}[g.r.IntN(3)]()
	})
}

func (g *sqdGen) parentWhere() string {
	if g.r.IntN(4) == 0 {
		return ""
	}
	return " WHERE " + g.bool(2, func() string {
		return []func() string{
			func() string { return "p1 = " + g.lit("int4") },
			func() string { return "p2 <> " + g.lit("text") },
			func() string { return "pb" },
			func() string { return "pn > " + g.lit("numeric") },
			func() string { return g.in("pg", "SELECT g1 FROM grand"+g.grandWhere()) },
			func() string { return g.in("p1", "SELECT g1 FROM grand"+g.grandWhere()) },
		}[g.r.IntN(6)]()
	})
}

func (g *sqdGen) clause() string {
	return g.bool(3, func() string {
		return []func() string{
			func() string { return "c3 = " + g.lit("int4") },
			func() string { return "c2 = " + g.lit("text") },
			func() string { return "cb" },
			func() string { return "c1 < c3" },
			func() string { return "cn >= " + g.lit("numeric") },
			func() string { return g.in("c1", "SELECT p1 FROM parent"+g.parentWhere()) },
			func() string { return g.in("c3", "SELECT pg FROM parent"+g.parentWhere()) },
			func() string { return g.in("c2", "SELECT p2 FROM parent"+g.parentWhere()) },
			func() string { return g.in("cn", "SELECT pn FROM parent"+g.parentWhere()) },
			func() string { return g.in("(c1, c2)", "SELECT p1, p2 FROM parent"+g.parentWhere()) },
			func() string { return g.in("(cb, c3)", "SELECT pb, pg FROM parent"+g.parentWhere()) },
			func() string { return g.in("c1", "SELECT g1 FROM grand"+g.grandWhere()) },
		}[g.r.IntN(12)]()
	})
}

// sqdPGView reads a dependency's view by running its SQL.
func sqdPGView(t *testing.T, ctx context.Context, conn *pgx.Conn, d *Dependency) *View {
	t.Helper()
	v := NewView(d.Types)
	for _, row := range sqdQueryText(t, ctx, conn, d.SQL()) {
		if err := v.Add(Value(row)); err != nil {
			t.Fatalf("%s: %v", d.SQL(), err)
		}
	}
	return v
}

// sqdGoView computes a dependency's view in Go: its table's rows for
// which its plan (with views computed the same way, recursively) holds.
func sqdGoView(t *testing.T, rows map[string][]MapRow, d *Dependency) *View {
	t.Helper()
	var views []*View
	if d.Plan != nil {
		for _, n := range d.Plan.Deps {
			views = append(views, sqdGoView(t, rows, n))
		}
	}
	v := NewView(d.Types)
	for _, row := range rows[d.Table] {
		if d.Plan != nil {
			conds, err := d.Plan.ActiveConditions(row, views)
			if err != nil {
				t.Fatalf("%s on %v: %v", d.Where, row, err)
			}
			if !d.Plan.Includes(conds) {
				continue
			}
		}
		if err := v.Add(d.ValueOf(row)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func sqdSameView(a, b *View) bool {
	key := func(v *View) []ValueKey {
		var out []ValueKey
		for _, x := range v.Values() {
			k, _ := Key(v.types, x)
			out = append(out, k)
		}
		return out
	}
	return slices.Equal(key(a), key(b))
}

func TestSubqueryDifferential(t *testing.T) {
	r := testseed.Rand(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range displaySettings {
		mustExec(t, ctx, conn, s)
	}
	for _, tb := range sqdTables {
		var defs []string
		for _, c := range tb.cols {
			defs = append(defs, quoteIdent(c.Name)+" "+c.Type)
		}
		mustExec(t, ctx, conn, "CREATE TABLE "+tb.name+" ("+strings.Join(defs, ", ")+", PRIMARY KEY (id))")
	}
	const prefix = "stk'1-handle"
	var compared, refused, nested, rowsIn, positions, moveIns int
	for i := 0; i < 200; i++ {
		if i%25 == 0 {
			sqdFill(t, ctx, conn, r)
		}
		rows := map[string][]MapRow{}
		for _, tb := range sqdTables {
			rows[tb.name] = sqdRows(t, ctx, conn, tb.name)
		}
		g := &sqdGen{r: r, params: map[string]string{}}
		clause := g.clause()
		p, err := ParsePlan(clause, sqdTables[2].cols, g.params, sqdLookup)
		if err != nil {
			if strings.Contains(err.Error(), "both negated and not negated") || strings.Contains(err.Error(), "too complex") {
				refused++
				continue
			}
			t.Fatalf("ParsePlan(%q, %v): %v", clause, g.params, err)
		}
		compared++
		positions += len(p.Positions)
		var views []*View
		var args []any
		params := make(ViewParams, len(p.Deps))
		for d, dep := range p.Deps {
			v := sqdPGView(t, ctx, conn, dep)
			if gv := sqdGoView(t, rows, dep); !sqdSameView(v, gv) {
				t.Fatalf("clause %q: dependency %s\n  Postgres view %v\n  Go view %v", clause, dep.SQL(), v.Values(), gv.Values())
			}
			if dep.Plan != nil && len(dep.Plan.Deps) > 0 {
				nested++
			}
			views = append(views, v)
			params[d] = len(args) + 1
			for _, a := range v.Arrays() {
				args = append(args, a)
			}
		}
		var tags, live, viaViews, disjuncts []string
		for q := range p.Positions {
			live = append(live, p.ConditionSQL(q, nil))
			viaViews = append(viaViews, p.ConditionSQL(q, params))
		}
		for d := range p.Disjuncts {
			tags = append(tags, p.TagSQL(d, prefix))
			disjuncts = append(disjuncts, p.DisjunctSQL(d, params))
		}
		liveSQL := "SELECT id, ARRAY[" + strings.Join(tags, ", ") + "], ARRAY[" + strings.Join(live, ", ") + "], COALESCE(" + p.SQL() + ", false) FROM child ORDER BY id"
		viewSQL := "SELECT id, ARRAY[" + strings.Join(viaViews, ", ") + "], COALESCE(" + p.WhereSQL(params) + ", false), COALESCE(" + strings.Join(disjuncts, " OR ") + ", false) FROM child ORDER BY id"
		type pgRow struct {
			id            int
			tags          []string
			conds, vconds []bool
			in, vin, din  bool
		}
		var got []pgRow
		pr, err := conn.Query(ctx, liveSQL)
		if err != nil {
			t.Fatalf("clause %q: %s: %v", clause, liveSQL, err)
		}
		for pr.Next() {
			var x pgRow
			if err := pr.Scan(&x.id, &x.tags, &x.conds, &x.in); err != nil {
				t.Fatal(err)
			}
			got = append(got, x)
		}
		if pr.Close(); pr.Err() != nil {
			t.Fatalf("clause %q: %s: %v", clause, liveSQL, pr.Err())
		}
		pr, err = conn.Query(ctx, viewSQL, args...)
		if err != nil {
			t.Fatalf("clause %q: %s: %v", clause, viewSQL, err)
		}
		for j := 0; pr.Next(); j++ {
			var id int
			if err := pr.Scan(&id, &got[j].vconds, &got[j].vin, &got[j].din); err != nil {
				t.Fatal(err)
			}
		}
		if pr.Close(); pr.Err() != nil {
			t.Fatalf("clause %q: %s: %v", clause, viewSQL, pr.Err())
		}
		for j, row := range rows["child"] {
			m, err := p.Meta(row, views, prefix)
			if err != nil {
				t.Fatalf("Meta: %v", err)
			}
			w := got[j]
			if !slices.Equal(m.Tags, w.tags) || !slices.Equal(m.ActiveConditions, w.conds) || m.Included != w.in ||
				!slices.Equal(m.ActiveConditions, w.vconds) || m.Included != w.vin || m.Included != w.din {
				t.Fatalf("clause %q (params %v)\n  plan %s\n  row %v\n  Go:       tags %q conditions %v included %v\n  Postgres: tags %q conditions %v included %v\n  views:    conditions %v included %v, by disjuncts %v",
					clause, g.params, describe(p), rowValues(dbRow{vals: row}, []string{"id", "c1", "c2", "c3", "cn", "cb"}),
					m.Tags, m.ActiveConditions, m.Included, w.tags, w.conds, w.in, w.vconds, w.vin, w.din)
			}
			if m.Included {
				rowsIn++
			}
		}
		moveIns += sqdCheckMoveIn(t, ctx, conn, r, p, clause, rows["child"], views, params, args)
	}
	t.Logf("clauses compared %d (%d with nested subqueries, %d positions), refused %d (mixed polarity or too many disjuncts), rows in shape %d, rows moved in %d",
		compared, nested, positions, refused, rowsIn, moveIns)
	if compared < 150 || nested == 0 || rowsIn == 0 || moveIns == 0 {
		t.Errorf("too little compared")
	}
}

// sqdCheckMoveIn picks a dependency and a changed view for it (some values
// added, or some removed) and checks that MoveInWhereSQL selects exactly
// the rows that Go puts in the shape with the changed view but not with
// the current one. It returns how many rows moved in.
func sqdCheckMoveIn(t *testing.T, ctx context.Context, conn *pgx.Conn, r *rand.Rand, p *Plan, clause string,
	rows []MapRow, views []*View, params ViewParams, args []any) int {
	t.Helper()
	if len(p.Deps) == 0 {
		return 0
	}
	d := r.IntN(len(p.Deps))
	part := NewView(p.Deps[d].Types)
	for _, v := range views[d].Values() {
		if r.IntN(2) == 0 {
			if err := part.Add(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, after := slices.Clone(views), slices.Clone(views)
	beforeParams, afterParams := slices.Clone(params), slices.Clone(params)
	if r.IntN(2) == 0 {
		before[d] = part
		beforeParams[d] = len(args) + 1
	} else {
		after[d] = part
		afterParams[d] = len(args) + 1
	}
	for _, a := range part.Arrays() {
		args = append(args, a)
	}
	var want []int
	for _, row := range rows {
		mb, err := p.Meta(row, before, "")
		if err != nil {
			t.Fatal(err)
		}
		ma, err := p.Meta(row, after, "")
		if err != nil {
			t.Fatal(err)
		}
		if ma.Included && !mb.Included {
			id, _ := strconv.Atoi(*row["id"])
			want = append(want, id)
		}
	}
	sql := "SELECT id FROM child WHERE " + p.MoveInWhereSQL(d, beforeParams, afterParams) + " ORDER BY id"
	qr, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("clause %q: %s: %v", clause, sql, err)
	}
	got, err := pgx.CollectRows(qr, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("clause %q: %s: %v", clause, sql, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("clause %q: move-in of dependency %d\n  before %v\n  after  %v\n  Postgres moves in %v, Go %v\n  %s",
			clause, d, before[d].Values(), after[d].Values(), got, want, sql)
	}
	return len(want)
}
