package where

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzSubqueryWhere: ParsePlan never panics and returns a plan or an
// *Error / *TableError; an accepted plan's SQL parses back to the same
// SQL, and its metadata and renderers run on sample rows.
func FuzzSubqueryWhere(f *testing.F) {
	seeds := []string{
		"parent_id IN (SELECT id FROM parent)",
		"parent_id IN (SELECT id FROM parent WHERE value = $1)",
		"(user_id, team_id) IN (SELECT user_id, team_id FROM memberships WHERE role = 'admin')",
		"parent_id NOT IN (SELECT id FROM parent)",
		"NOT (parent_id IN (SELECT id FROM parent))",
		`value IN (SELECT value FROM s."Grand Parent") OR x = 1`,
		"x IN (SELECT id FROM parent) AND (y IN (SELECT value FROM parent) OR z = 5)",
		"NOT (a = 7 OR y IN (SELECT id FROM parent))",
		`parent_id IN (SELECT id FROM parent WHERE gid IN (SELECT id FROM s."Grand Parent" WHERE value > $1))`,
		"parent_id IN (SELECT id FROM parent WHERE include_parent = true) OR include_child = true",
		"EXISTS (SELECT id FROM parent)",
		"parent_id = ANY (SELECT id FROM parent)",
		"parent_id > ALL (SELECT id FROM parent)",
		"parent_id = (SELECT id FROM parent)",
		"parent_id + 1 IN (SELECT id FROM parent)",
		"parent_id IN (SELECT * FROM parent)",
		"parent_id IN (SELECT DISTINCT id FROM parent ORDER BY id LIMIT 1)",
		"parent_id IN (SELECT id FROM parent, memberships)",
		"parent_id IN (SELECT id FROM parent UNION SELECT id FROM parent)",
		"parent_id IN (SELECT id FROM parent WHERE value = child.value)",
		"big_parent IN (SELECT id FROM parent)",
		"parent_id IN (SELECT id FROM parent) OR NOT parent_id IN (SELECT id FROM parent)",
		"(parent_id IN (SELECT id FROM parent)) = true",
		"(parent_id IN (SELECT id FROM parent)) IS TRUE",
		"COALESCE(parent_id IN (SELECT id FROM parent), false)",
		"parent_id IN (SELECT id FROM nope)",
		"(x = 1 OR x = 2 OR x = 3) AND (y = 1 OR y = 2) AND z IN (SELECT id FROM parent)",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	rows := []MapRow{
		{},
		{"parent_id": ptr("1"), "x": ptr("1"), "y": ptr("2"), "z": ptr("5"), "a": ptr("7"), "user_id": ptr("1"), "team_id": ptr("2"),
			"value": ptr("3"), "name": ptr("a"), "flag": ptr("t"), "include_child": ptr("f"), "big_parent": ptr("9")},
	}
	f.Fuzz(func(t *testing.T, clause string) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("input takes over 10s: %q", clause))
			}
		}()
		p, err := sqParse(clause, map[string]string{"1": "5"})
		if err != nil {
			var e *Error
			var te *TableError
			if !errors.As(err, &e) && !errors.As(err, &te) {
				t.Fatalf("ParsePlan(%q) returned %T, want *Error or *TableError", clause, err)
			}
			return
		}
		sql := p.SQL()
		p2, err := sqParse(sql, nil)
		if err != nil {
			t.Fatalf("SQL() of %q does not parse: %s: %v", clause, sql, err)
		}
		if sql2 := p2.SQL(); sql2 != sql {
			t.Fatalf("SQL() not stable for %q:\n  %s\n  %s", clause, sql, sql2)
		}
		views := make([]*View, len(p.Deps))
		params := make(ViewParams, len(p.Deps))
		for d, dep := range p.Deps {
			views[d] = NewView(dep.Types)
			params[d] = d + 1
		}
		for _, r := range rows {
			if _, err := p.Meta(r, views, "stk"); err != nil && !errors.As(err, new(*Error)) {
				t.Fatalf("Meta: %T %v", err, err)
			}
		}
		for i := range p.Disjuncts {
			_ = p.TagSQL(i, "stk")
			_ = p.DisjunctSQL(i, params)
		}
		for q := range p.Positions {
			_ = p.ConditionSQL(q, params)
		}
	})
}
