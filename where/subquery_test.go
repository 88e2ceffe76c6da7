package where

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sqTables is the catalog of the subquery unit tests; the outer table is
// child (sqChild).
var sqTables = map[TableRef]Table{
	{Schema: "public", Name: "parent"}: {Schema: "public", Name: "parent", Columns: []Column{
		{Name: "id", Type: "int4"}, {Name: "value", Type: "int4"}, {Name: "name", Type: "text"},
		{Name: "big", Type: "int8"}, {Name: "flag", Type: "bool"}, {Name: "gid", Type: "int4"},
		{Name: "doc", Type: "jsonb"}, {Name: "include_parent", Type: "bool"},
	}},
	{Schema: "public", Name: "memberships"}: {Schema: "public", Name: "memberships", Columns: []Column{
		{Name: "user_id", Type: "int4"}, {Name: "team_id", Type: "int4"}, {Name: "role", Type: "text"},
	}},
	{Schema: "s", Name: "Grand Parent"}: {Schema: "s", Name: "Grand Parent", Columns: []Column{
		{Name: "id", Type: "int4"}, {Name: "value", Type: "int4"},
	}},
}

var sqChild = []Column{
	{Name: "id", Type: "int4"}, {Name: "parent_id", Type: "int4"}, {Name: "value", Type: "int4"},
	{Name: "big_parent", Type: "int8"}, {Name: "name", Type: "text"}, {Name: "flag", Type: "bool"},
	{Name: "include_child", Type: "bool"}, {Name: "user_id", Type: "int4"}, {Name: "team_id", Type: "int4"},
	{Name: "doc", Type: "jsonb"}, {Name: "x", Type: "int4"}, {Name: "y", Type: "int4"},
	{Name: "z", Type: "int4"}, {Name: "a", Type: "int4"},
}

func sqLookup(ref TableRef) (Table, error) {
	if ref.Schema == "" {
		ref.Schema = "public"
	}
	t, ok := sqTables[ref]
	if !ok {
		return Table{}, fmt.Errorf("relation %s does not exist", ref)
	}
	return t, nil
}

func sqParse(clause string, params map[string]string) (*Plan, error) {
	return ParsePlan(clause, sqChild, params, sqLookup)
}

func TestParsePlanAccepts(t *testing.T) {
	tests := []struct {
		clause string
		params map[string]string
		sql    string   // Plan.SQL()
		deps   []string // each dependency's SQL()
	}{
		{"parent_id IN (SELECT id FROM parent)", nil,
			`(("parent_id") IN (SELECT "id" FROM "public"."parent"))`,
			[]string{`SELECT "id" FROM "public"."parent"`}},
		{"parent_id IN (SELECT id FROM parent WHERE value = $1)", map[string]string{"1": "10"},
			`(("parent_id") IN (SELECT "id" FROM "public"."parent" WHERE ("value" = '10'::int4)))`,
			[]string{`SELECT "id" FROM "public"."parent" WHERE ("value" = '10'::int4)`}},
		{`(user_id, team_id) IN (SELECT user_id, team_id FROM memberships WHERE role = 'admin')`, nil,
			`(("user_id", "team_id") IN (SELECT "user_id", "team_id" FROM "public"."memberships" WHERE ("role" = 'admin'::text)))`,
			[]string{`SELECT "user_id", "team_id" FROM "public"."memberships" WHERE ("role" = 'admin'::text)`}},
		{"ROW(parent_id) IN (SELECT id FROM parent)", nil,
			`(("parent_id") IN (SELECT "id" FROM "public"."parent"))`,
			[]string{`SELECT "id" FROM "public"."parent"`}},
		{"parent_id NOT IN (SELECT id FROM parent)", nil,
			`(NOT (("parent_id") IN (SELECT "id" FROM "public"."parent")))`,
			[]string{`SELECT "id" FROM "public"."parent"`}},
		{"NOT (parent_id IN (SELECT id FROM parent))", nil,
			`(NOT (("parent_id") IN (SELECT "id" FROM "public"."parent")))`,
			[]string{`SELECT "id" FROM "public"."parent"`}},
		// non-PK columns, schema-qualified quoted table
		{`value IN (SELECT value FROM s."Grand Parent") OR x = 1`, nil,
			`((("value") IN (SELECT "value" FROM "s"."Grand Parent")) OR ("x" = '1'::int4))`,
			[]string{`SELECT "value" FROM "s"."Grand Parent"`}},
		// dedup: identical subqueries share an index; a different select
		// list or parameter value is another dependency
		{"parent_id IN (SELECT id FROM parent WHERE value = $1) AND (x IN (SELECT gid FROM parent) OR parent_id IN (SELECT id FROM parent WHERE value = $1) OR y IN (SELECT id FROM parent WHERE value = $2))",
			map[string]string{"1": "1", "2": "2"},
			`((("parent_id") IN (SELECT "id" FROM "public"."parent" WHERE ("value" = '1'::int4))) AND ((("x") IN (SELECT "gid" FROM "public"."parent")) OR (("parent_id") IN (SELECT "id" FROM "public"."parent" WHERE ("value" = '1'::int4))) OR (("y") IN (SELECT "id" FROM "public"."parent" WHERE ("value" = '2'::int4)))))`,
			[]string{
				`SELECT "id" FROM "public"."parent" WHERE ("value" = '1'::int4)`,
				`SELECT "gid" FROM "public"."parent"`,
				`SELECT "id" FROM "public"."parent" WHERE ("value" = '2'::int4)`,
			}},
		// the same parameter value written differently is the same dependency
		{"parent_id IN (SELECT id FROM parent WHERE value = $1) OR x IN (SELECT id FROM parent WHERE value = 7)", map[string]string{"1": "007"},
			`((("parent_id") IN (SELECT "id" FROM "public"."parent" WHERE ("value" = '7'::int4))) OR (("x") IN (SELECT "id" FROM "public"."parent" WHERE ("value" = '7'::int4))))`,
			[]string{`SELECT "id" FROM "public"."parent" WHERE ("value" = '7'::int4)`}},
		// nested: the inner where has its own subquery
		{`parent_id IN (SELECT id FROM parent WHERE gid IN (SELECT id FROM s."Grand Parent" WHERE value > $1))`, map[string]string{"1": "5"},
			`(("parent_id") IN (SELECT "id" FROM "public"."parent" WHERE (("gid") IN (SELECT "id" FROM "s"."Grand Parent" WHERE ("value" > '5'::int4)))))`,
			[]string{`SELECT "id" FROM "public"."parent" WHERE (("gid") IN (SELECT "id" FROM "s"."Grand Parent" WHERE ("value" > '5'::int4)))`}},
		// no subquery at all
		{"x = 1 OR NOT flag", nil, `(("x" = '1'::int4) OR (NOT "flag"))`, nil},
		{"'t'", nil, `true`, nil},
	}
	for _, tt := range tests {
		p, err := sqParse(tt.clause, tt.params)
		if err != nil {
			t.Errorf("ParsePlan(%q): %v", tt.clause, err)
			continue
		}
		if got := p.SQL(); got != tt.sql {
			t.Errorf("ParsePlan(%q).SQL()\n  got  %s\n  want %s", tt.clause, got, tt.sql)
		}
		var deps []string
		for _, d := range p.Deps {
			deps = append(deps, d.SQL())
		}
		if strings.Join(deps, "\n") != strings.Join(tt.deps, "\n") {
			t.Errorf("ParsePlan(%q) dependencies\n  got  %q\n  want %q", tt.clause, deps, tt.deps)
		}
		// The canonical SQL parses back to the same plan.
		again, err := sqParse(p.SQL(), nil)
		if err != nil {
			t.Errorf("ParsePlan(SQL() of %q): %v", tt.clause, err)
		} else if again.SQL() != p.SQL() {
			t.Errorf("SQL() of %q does not round-trip:\n  %s\n  %s", tt.clause, p.SQL(), again.SQL())
		}
	}
}

func TestParsePlanNested(t *testing.T) {
	p, err := sqParse(`parent_id IN (SELECT id FROM parent WHERE gid IN (SELECT id FROM s."Grand Parent" WHERE value = $1) AND flag) AND name = $2`,
		map[string]string{"1": "3", "2": "n"})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Deps[0]
	if d.Schema != "public" || d.Table != "parent" || fmt.Sprint(d.Columns) != "[id]" || fmt.Sprint(d.Types) != "[int4]" {
		t.Errorf("dependency %+v", d)
	}
	if want := `((("gid") IN (SELECT "id" FROM "s"."Grand Parent" WHERE ("value" = '3'::int4))) AND "flag")`; d.Where != want {
		t.Errorf("Where %s, want %s", d.Where, want)
	}
	if d.Plan == nil || len(d.Plan.Deps) != 1 || d.Plan.Deps[0].Table != "Grand Parent" || d.Plan.Deps[0].Plan == nil || len(d.Plan.Deps[0].Plan.Deps) != 0 {
		t.Fatalf("nested plan %+v", d.Plan)
	}
	if got := d.Plan.Deps[0].Where; got != `("value" = '3'::int4)` {
		t.Errorf("nested Where %s", got)
	}
	if len(p.Positions) != 2 || p.Positions[1].IsSubquery() {
		t.Errorf("outer positions %+v", p.Positions)
	}
	if got := fmt.Sprint(p.Columns()); got != "[name parent_id]" {
		t.Errorf("Columns() = %s", got)
	}
	if got := fmt.Sprint(d.Plan.Columns()); got != "[flag gid]" {
		t.Errorf("nested Columns() = %s", got)
	}
	// Unqualified and qualified names of one table are one dependency.
	p, err = sqParse(`parent_id IN (SELECT id FROM parent) OR x IN (SELECT id FROM public.parent)`, nil)
	if err != nil || len(p.Deps) != 1 {
		t.Errorf("deps %v, %v", p, err)
	}
}

func TestParsePlanRefuses(t *testing.T) {
	tests := []struct {
		clause string
		want   string
	}{
		{"EXISTS (SELECT id FROM parent)", "At location 0: only `value IN (SELECT ...)` subqueries are supported"},
		{"parent_id = ANY (SELECT id FROM parent)", "At location 10: only `value IN (SELECT ...)` subqueries are supported"},
		{"parent_id > ALL (SELECT id FROM parent)", "At location 10: only `value IN (SELECT ...)` subqueries are supported"},
		{"parent_id = (SELECT id FROM parent)", "At location 12: only `value IN (SELECT ...)` subqueries are supported"},
		{"x = 1 OR parent_id = (SELECT id FROM parent)", "At location 21: only `value IN (SELECT ...)` subqueries are supported"},
		{"ARRAY(SELECT id FROM parent) = '{}'", "only `value IN (SELECT ...)` subqueries are supported"},
		{"parent_id + 1 IN (SELECT id FROM parent)", "At location 14: the left side of IN (SELECT ...) must be a column or a list of columns"},
		{"(parent_id, 1) IN (SELECT id, value FROM parent)", "must be a column or a list of columns"},
		{"nope IN (SELECT id FROM parent)", "At location 0: unknown reference nope"},
		{"parent_id IN (SELECT * FROM parent)", "At location 21: a subquery's select list must be plain column names"},
		{"parent_id IN (SELECT parent.id FROM parent)", "At location 21: unknown reference parent.id"},
		{"parent_id IN (SELECT id + 1 FROM parent)", "a subquery's select list must be plain column names"},
		{"parent_id IN (SELECT count(*) FROM parent)", "a subquery's select list must be plain column names"},
		{"parent_id IN (SELECT id AS x FROM parent)", "a subquery's select list must be plain column names"},
		{"parent_id IN (SELECT 1 FROM parent)", "a subquery's select list must be plain column names"},
		{"parent_id IN (SELECT nope FROM parent)", "At location 21: unknown reference nope"},
		{"parent_id IN (SELECT DISTINCT id FROM parent)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent GROUP BY id)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent GROUP BY id HAVING id > 1)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent WINDOW w AS ())", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent ORDER BY id)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent LIMIT 1)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent OFFSET 1)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent FOR UPDATE)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (WITH p AS (SELECT 1) SELECT id FROM parent)", "must not have clauses other than FROM and WHERE"},
		{"parent_id IN (SELECT id FROM parent, memberships)", "At location 10: a subquery must select from exactly one table"},
		{"parent_id IN (SELECT id FROM parent JOIN memberships ON true)", "a subquery must select from exactly one table"},
		{"parent_id IN (SELECT id FROM (SELECT id FROM parent) p)", "a subquery must select from exactly one table"},
		{"parent_id IN (SELECT id FROM parent UNION SELECT id FROM parent)", "a subquery must select from exactly one table"},
		{"parent_id IN (SELECT id)", "a subquery must select from exactly one table"},
		{"parent_id IN (VALUES (1))", "a subquery must select from exactly one table"},
		{"parent_id IN (SELECT id FROM parent p)", "At location 29: a subquery's FROM must name a table plainly"},
		{"parent_id IN (SELECT id FROM ONLY parent)", "a subquery's FROM must name a table plainly"},
		{"parent_id IN (SELECT id FROM db.public.parent)", "a subquery's FROM must name a table plainly"},
		// correlated: the inner where sees the inner table only
		{"parent_id IN (SELECT id FROM parent WHERE value = child.value)", "At location 50: unknown reference child.value"},
		{"parent_id IN (SELECT id FROM parent WHERE value = include_child)", "At location 50: unknown reference include_child"},
		{"parent_id IN (SELECT id FROM parent WHERE value = 'abc')", `At location 50: invalid input syntax for type integer: "abc"`},
		{"parent_id IN (SELECT id FROM parent WHERE value)", "WHERE clause must return a boolean"},
		{"parent_id IN (SELECT id FROM parent WHERE value = $3)", "At location 50: parameter $3 was not provided"},
		{"parent_id IN (SELECT id FROM parent WHERE now() > '2020-01-01')", "non-deterministic functions are not supported"},
		{"big_parent IN (SELECT id FROM parent)", "At location 11: left side of IN (SELECT ...) has type int8 but the subquery returns int4"},
		{"parent_id IN (SELECT big FROM parent)", "has type int4 but the subquery returns int8"},
		{"name IN (SELECT id FROM parent)", "has type text but the subquery returns int4"},
		{"(user_id, team_id) IN (SELECT user_id FROM memberships)", "subquery has too few columns"},
		{"user_id IN (SELECT user_id, team_id FROM memberships)", "subquery has too many columns"},
		{"doc IN (SELECT doc FROM parent)", "IN (SELECT ...) is not supported for columns of type jsonb"},
		{"parent_id IN (SELECT id FROM parent) OR NOT parent_id IN (SELECT id FROM parent)",
			"At location 54: a subquery cannot be used both negated and not negated in the same where clause"},
		{"parent_id IN (SELECT id FROM parent) AND NOT (x = 1 OR parent_id IN (SELECT id FROM parent))",
			"a subquery cannot be used both negated and not negated"},
		{"(parent_id IN (SELECT id FROM parent)) = true", "At location 11: a subquery can only be an operand of AND, OR and NOT"},
		{"(parent_id IN (SELECT id FROM parent)) IS TRUE", "a subquery can only be an operand of AND, OR and NOT"},
		{"COALESCE(parent_id IN (SELECT id FROM parent), false)", "a subquery can only be an operand of AND, OR and NOT"},
		{"CASE WHEN flag THEN parent_id IN (SELECT id FROM parent) ELSE false END", "a subquery can only be an operand of AND, OR and NOT"},
		{"parent_id IN (SELECT id FROM parent) AND x", "argument of AND must be type boolean, not type int4"},
		{"x", "WHERE clause must return a boolean"},
		{"parent_id IN (SELECT id FROM parent) OR 1/0 = 1", "At location 41: division by zero"},
		{"parent_id IN (SELECT id FROM parent) ORDER BY 1", "malformed query ending with SQL clauses"},
		{"parent_id IN (SELECT id FROM parent", "syntax error"},
	}
	for _, tt := range tests {
		_, err := sqParse(tt.clause, map[string]string{"1": "1"})
		if err == nil {
			t.Errorf("ParsePlan(%q) succeeded, want %q", tt.clause, tt.want)
			continue
		}
		if _, ok := err.(*Error); !ok {
			t.Errorf("ParsePlan(%q) error is %T, want *Error", tt.clause, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePlan(%q) error\n  got  %q\n  want %q", tt.clause, err.Error(), tt.want)
		}
	}
}

func TestParsePlanUnknownTable(t *testing.T) {
	for _, clause := range []string{
		"parent_id IN (SELECT id FROM nope)",
		"parent_id IN (SELECT id FROM parent WHERE gid IN (SELECT id FROM other.parent))",
	} {
		_, err := sqParse(clause, nil)
		var te *TableError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("ParsePlan(%q) = %v, want a *TableError", clause, err)
		}
	}
}

func TestParsePlanParams(t *testing.T) {
	for _, params := range []map[string]string{{"2": "1"}, {"1": "1", "3": "1"}, {"0": "1"}, {"01": "1"}, {"x": "1"}} {
		_, err := sqParse("parent_id IN (SELECT id FROM parent WHERE value = $1)", params)
		if err == nil || err.Error() != "Parameters must be numbered sequentially, starting from 1" {
			t.Errorf("params %v: %v", params, err)
		}
	}
	// One numbering across the clause and its subqueries.
	p, err := sqParse("x = $1 AND parent_id IN (SELECT id FROM parent WHERE value = $2 AND name = $1)", map[string]string{"1": "7", "2": "8"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Deps[0].Where, `(("value" = '8'::int4) AND ("name" = '7'::text))`; got != want {
		t.Errorf("Where %s, want %s", got, want)
	}
}

func TestParsePlanDisjunctLimit(t *testing.T) {
	// (a1 OR … OR a10) AND (b1 OR … OR b10) has 100 disjuncts: accepted;
	// one more factor of 2 is refused, naming the count.
	var ors []string
	for i := 0; i < 10; i++ {
		ors = append(ors, fmt.Sprintf("x = %d", i))
	}
	or := "(" + strings.Join(ors, " OR ") + ")"
	clause := "parent_id IN (SELECT id FROM parent) AND " + or + " AND " + or
	p, err := sqParse(clause, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Disjuncts) != 100 || len(p.Positions) != 300 {
		t.Errorf("%d disjuncts, %d positions", len(p.Disjuncts), len(p.Positions))
	}
	_, err = sqParse(clause+" AND (y = 1 OR y = 2)", nil)
	if err == nil || err.Error() != "where clause too complex for DNF decomposition (200 disjuncts exceeds the limit of 100)" {
		t.Errorf("200 disjuncts: %v", err)
	}
	// A product that would overflow is refused without being built.
	huge := strings.Repeat(or+" AND ", 40) + "true"
	if _, err := sqParse(huge, nil); err == nil || !strings.Contains(err.Error(), "more than a billion disjuncts") {
		t.Errorf("10^40 disjuncts: %v", err)
	}
}

// TestMoveInWhereNamesEveryParameter: a move-in query is given the
// views before for every dependency and the views after for those
// MoveInAfterDeps names, and its WHERE must use each of those parameters
// and no other (Postgres refuses a query with a parameter it does not
// use; with two subqueries ORed, the other one's view after once was).
func TestMoveInWhereNamesEveryParameter(t *testing.T) {
	for _, clause := range []string{
		"parent_id IN (SELECT id FROM parent WHERE flag) OR team_id IN (SELECT team_id FROM memberships)",
		"parent_id IN (SELECT id FROM parent WHERE flag) AND (team_id IN (SELECT team_id FROM memberships) OR value = 1)",
		"x NOT IN (SELECT id FROM parent) OR ((user_id, team_id) IN (SELECT user_id, team_id FROM memberships) AND y IN (SELECT value FROM parent))",
	} {
		p, err := sqParse(clause, nil)
		if err != nil {
			t.Fatalf("%s: %v", clause, err)
		}
		for d := range p.Deps {
			n := 0
			var want []int
			number := func(used []bool) ViewParams {
				vp := make(ViewParams, len(p.Deps))
				for dep := range p.Deps {
					if used != nil && !used[dep] {
						continue
					}
					vp[dep] = n + 1
					for range p.Deps[dep].Types {
						n++
						want = append(want, n)
					}
				}
				return vp
			}
			before := number(nil)
			after := number(p.MoveInAfterDeps(d))
			sql := p.MoveInWhereSQL(d, before, after)
			for _, k := range want {
				if !strings.Contains(sql, fmt.Sprintf("$%d::", k)) {
					t.Errorf("%s, move-in of dependency %d: $%d is passed but not used: %s", clause, d, k, sql)
				}
			}
			if strings.Contains(sql, fmt.Sprintf("$%d::", n+1)) {
				t.Errorf("%s, move-in of dependency %d: uses $%d, beyond the %d passed: %s", clause, d, n+1, n, sql)
			}
			if strings.Contains(sql, `FROM "`) {
				t.Errorf("%s, move-in of dependency %d: a subquery is rendered live instead of against a view: %s", clause, d, sql)
			}
		}
	}
}
