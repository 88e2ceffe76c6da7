package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

// sqSchema is a membership schema: alice is a member of projects 1 and 2,
// bob of 2 and 3; pubnotes are readable by everyone (so a request's
// subquery on members is what decides what it shows).
var sqSchema = []string{
	`CREATE TABLE members (project_id int, user_id text, role text, PRIMARY KEY (project_id, user_id))`,
	`CREATE TABLE projects (id int PRIMARY KEY, name text)`,
	`CREATE TABLE tasks (id int PRIMARY KEY, project_id int, title text)`,
	`CREATE TABLE pubnotes (id int PRIMARY KEY, project_id int, body text)`,
	`INSERT INTO members VALUES (1, 'alice', 'owner'), (2, 'alice', 'viewer'), (2, 'bob', 'owner'), (3, 'bob', 'owner')`,
	`INSERT INTO projects VALUES (1, 'p1'), (2, 'p2'), (3, 'q3'), (4, 'p4')`,
	`INSERT INTO tasks SELECT i, i % 5, 't' || i FROM generate_series(1, 40) i`,
	`INSERT INTO pubnotes SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 5 END, 'n' || i FROM generate_series(1, 40) i`,
}

const sqRulesJSON = `{
  "tables": {
    "members":  {"read": {"columns": ["project_id", "user_id"], "check": "user_id = $claims.sub"}},
    "projects": {"read": {"check": "id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)"}},
    "tasks":    {"read": {"check": "project_id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)"},
                 "write": {"operations": ["insert", "update", "delete"],
                           "check": "project_id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)"}},
    "pubnotes": {"read": {}},
    "secrets":  {"write": {"operations": ["insert"]}}
  }
}`

func newSubqueryEnv(t *testing.T) *env {
	e := newEnv(t, &auth.JWTConfig{Secret: secret}, "")
	for _, q := range sqSchema {
		if _, err := e.pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := auth.CompileRulesWith(context.Background(), &postgres.Inspector{Pool: e.pool}, []byte(sqRulesJSON), auth.RulesOptions{Subqueries: true})
	if err != nil {
		t.Fatal(err)
	}
	e.policy.Rules = rules
	e.restart(e.policy.Options(defaultOptions()))
	return e
}

// TestSubqueryRulesRefused: each refused form of a subquery in a check is
// a start-up error naming the rule, and without the flag any subquery is.
func TestSubqueryRulesRefused(t *testing.T) {
	e := newEnv(t, nil, "")
	for _, q := range sqSchema[:4] {
		if _, err := e.pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	src := &postgres.Inspector{Pool: e.pool}
	read := func(check string) string {
		return fmt.Sprintf(`{"tables": {"tasks": {"read": {"check": %q}}}}`, check)
	}
	write := func(check string) string {
		return fmt.Sprintf(`{"tables": {"tasks": {"write": {"operations": ["insert"], "check": %q}}}}`, check)
	}
	member := `project_id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)`
	cases := []struct{ rules, want string }{
		{read(`project_id IN (SELECT project_id FROM nosuch WHERE user_id = $claims.sub)`), `tables.tasks.read.check: table "nosuch" in subquery: table public.nosuch does not exist`},
		{write(`project_id IN (SELECT project_id FROM nosuch)`), `tables.tasks.write.check: table "nosuch" in subquery: table public.nosuch does not exist`},
		{read(`EXISTS (SELECT 1 FROM members WHERE user_id = $claims.sub)`), "tables.tasks.read.check: At location 0: only `value IN (SELECT ...)` subqueries are supported"},
		{read(`project_id = ANY (SELECT project_id FROM members)`), "only `value IN (SELECT ...)` subqueries are supported"},
		{read(`project_id + 0 IN (SELECT project_id FROM members)`), `the left side of IN (SELECT ...) must be a column or a list of columns`},
		{read(`project_id IN (SELECT * FROM members)`), `a subquery's select list must be plain column names`}, {read(`project_id IN (SELECT members.project_id FROM members)`), `unknown reference members.project_id`},
		{read(`project_id IN (SELECT project_id + 1 FROM members)`), `a subquery's select list must be plain column names`},
		{read(`project_id IN (SELECT project_id FROM members, projects)`), `a subquery must select from exactly one table`},
		{read(`project_id IN (SELECT project_id FROM members m)`), `a subquery's FROM must name a table plainly`},
		{read(`project_id IN (SELECT project_id FROM members LIMIT 1)`), `a subquery must not have clauses other than FROM and WHERE`},
		{read(`project_id IN (SELECT DISTINCT project_id FROM members)`), `a subquery must not have clauses other than FROM and WHERE`},
		{read(`title IN (SELECT project_id FROM members)`), `left side of IN (SELECT ...) has type text but the subquery returns int4`},
		{read(`project_id IN (SELECT project_id, user_id FROM members)`), `subquery has too many columns`},
		{read(`project_id IN (SELECT project_id FROM members WHERE usr = $claims.sub)`), `unknown reference usr`},
		{read(`(project_id IN (SELECT project_id FROM members)) = true`), `a subquery can only be an operand of AND, OR and NOT`},
		{read(`project_id IN (SELECT project_id FROM members) OR project_id NOT IN (SELECT project_id FROM members)`), `both negated and not negated`},
		{read(`project_id IN (SELECT project_id FROM members WHERE user_id = $1)`), `positional parameter $1`},
		{write(`id IN (SELECT project_id FROM members WHERE role = 3)`), `tables.tasks.write.check:`},
	}
	for _, c := range cases {
		_, err := auth.CompileRulesWith(context.Background(), src, []byte(c.rules), auth.RulesOptions{Subqueries: true})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rules %s:\n  got  %v\n  want …%s…", c.rules, err, c.want)
		}
	}
	// Without the flag, a subquery in a read or write check is refused
	// with the flag's name, whatever else is wrong with it.
	for _, rules := range []string{read(member), write(member), read(`project_id IN (SELECT project_id FROM nosuch)`)} {
		_, err := auth.CompileRules(context.Background(), src, []byte(rules))
		if err == nil || !strings.Contains(err.Error(), "start volt without -subqueries=false (VOLT_SUBQUERIES)") ||
			!strings.Contains(err.Error(), "tables.tasks.") {
			t.Errorf("rules %s without the flag: %v, want the rule and the flag named", rules, err)
		}
	}
	// With it, the membership rule compiles, and a plain check still
	// reports its own errors.
	if _, err := auth.CompileRulesWith(context.Background(), src, []byte(read(member)), auth.RulesOptions{Subqueries: true}); err != nil {
		t.Errorf("the membership rule: %v", err)
	}
	if _, err := auth.CompileRules(context.Background(), src, []byte(read(`titl = 'x'`))); err == nil || !strings.Contains(err.Error(), "unknown reference titl") {
		t.Errorf("a plain check's error: %v", err)
	}
}

// sqRead authorises a read of table for sub with the shape parameters kv
// (where and params[n]) and returns the ids the narrowed shape holds, read
// from Postgres with its clause (subqueries included).
func sqRead(t *testing.T, e *env, sub, table string, kv ...string) ([]int, error) {
	t.Helper()
	policy := &auth.ReadPolicy{Verifier: e.policy.Verifier, Rules: e.policy.Rules}
	r := httptest.NewRequest(http.MethodGet, "/v1/shape", nil)
	r.Header.Set("Authorization", "Bearer "+hs256(t, claims(sub, nil)))
	def := shape.Definition{Schema: "public", Table: table, Replica: shape.ReplicaDefault, Log: shape.LogFull}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "where" {
			def.Where = kv[i+1]
			continue
		}
		if def.Params == nil {
			def.Params = map[string]string{}
		}
		def.Params[strings.TrimSuffix(strings.TrimPrefix(kv[i], "params["), "]")] = kv[i+1]
	}
	if err := policy.AuthorizeRead(r, &httpapi.ReadRequest{Table: table, Def: &def}); err != nil {
		return nil, err
	}
	ctx := context.Background()
	ins := &postgres.Inspector{Pool: e.pool}
	tbl, err := ins.Table(ctx, "public", table)
	if err != nil {
		t.Fatal(err)
	}
	tables := func(ref where.TableRef) (where.Table, error) {
		schema := ref.Schema
		if schema == "" {
			schema = "public"
		}
		it, err := ins.Table(ctx, schema, ref.Name)
		if err != nil {
			return where.Table{}, err
		}
		wt := where.Table{Schema: it.Schema, Name: it.Name}
		for _, c := range it.Columns {
			wt.Columns = append(wt.Columns, where.Column{Name: c.Name, Type: c.TypeName})
		}
		return wt, nil
	}
	sh, err := shape.NewWithSubqueries(def, tbl, tables)
	if err != nil {
		t.Fatalf("the authorised definition %+v does not compile: %v", def, err)
	}
	q := "SELECT id FROM " + table
	if pl := sh.Plan(); pl != nil {
		q += " WHERE " + pl.SQL()
	} else if f, _ := sh.Filter(); f != nil {
		q += " WHERE " + f.SQL()
	}
	return sqIDs(t, e, q), nil
}

func sqIDs(t *testing.T, e *env, q string, args ...any) []int {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	ids := []int{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// TestSubqueryReadRules: a read rule with a subquery, and requests'
// subqueries narrowed by their tables' rules, give exactly the rows of
// the SQL that the user could run with what they may read (differential
// against Postgres); unreadable tables and columns are 403s naming them.
func TestSubqueryReadRules(t *testing.T) {
	e := newSubqueryEnv(t)
	mine := func(sub string) string {
		return "(SELECT project_id FROM members WHERE user_id = '" + sub + "')"
	}
	for _, sub := range []string{"alice", "bob", "carol"} {
		cases := []struct {
			table string
			kv    []string
			want  string // the SQL the user could run
		}{
			{"tasks", nil, "SELECT id FROM tasks WHERE project_id IN " + mine(sub)},
			{"tasks", []string{"where", "id > $1", "params[1]", "20"}, "SELECT id FROM tasks WHERE id > 20 AND project_id IN " + mine(sub)},
			{"projects", nil, "SELECT id FROM projects WHERE id IN " + mine(sub)},
			// A request's subquery on members sees only the caller's rows.
			{"pubnotes", []string{"where", "project_id IN (SELECT project_id FROM members)"}, "SELECT id FROM pubnotes WHERE project_id IN " + mine(sub)},
			{"pubnotes", []string{"where", "project_id NOT IN (SELECT project_id FROM members WHERE user_id <> $1)", "params[1]", "nobody"},
				"SELECT id FROM pubnotes WHERE project_id NOT IN " + mine(sub)},
			{"pubnotes", []string{"where", "id < 10 OR project_id IN (SELECT project_id FROM members) AND body LIKE 'n1%'"},
				"SELECT id FROM pubnotes WHERE id < 10 OR project_id IN " + mine(sub) + " AND body LIKE 'n1%'"},
			// Nested: projects' own rule narrows the middle level, and the
			// innermost members subquery is narrowed too.
			{"pubnotes", []string{"where", "project_id IN (SELECT id FROM projects WHERE name LIKE 'p%')"},
				"SELECT id FROM pubnotes WHERE project_id IN (SELECT id FROM projects WHERE name LIKE 'p%' AND id IN " + mine(sub) + ")"},
			{"pubnotes", []string{"where", "project_id IN (SELECT id FROM projects WHERE id IN (SELECT project_id FROM members WHERE user_id <> 'x'))"},
				"SELECT id FROM pubnotes WHERE project_id IN (SELECT id FROM projects WHERE id IN " + mine(sub) + ")"},
			// The rule's subquery and the request's, on one table.
			{"tasks", []string{"where", "project_id NOT IN (SELECT id FROM projects WHERE name = 'p1')"},
				"SELECT id FROM tasks WHERE project_id IN " + mine(sub) + " AND project_id NOT IN (SELECT id FROM projects WHERE name = 'p1' AND id IN " + mine(sub) + ")"},
		}
		for _, c := range cases {
			got, err := sqRead(t, e, sub, c.table, c.kv...)
			if err != nil {
				t.Errorf("%s reads %s %v: %v", sub, c.table, c.kv, err)
				continue
			}
			if want := sqIDs(t, e, c.want); !slices.Equal(got, want) {
				t.Errorf("%s reads %s %v:\n  got  %v\n  want %v (%s)", sub, c.table, c.kv, got, want, c.want)
			}
		}
	}
	refused := []struct {
		kv   []string
		want string
	}{
		{[]string{"where", "project_id IN (SELECT id FROM secrets)"}, "table public.secrets is not readable: it has no read rule"},
		{[]string{"where", "project_id IN (SELECT id FROM nosuch)"}, "table public.nosuch is not readable: it has no read rule"},
		{[]string{"where", "project_id IN (SELECT project_id FROM members WHERE role = 'owner')"}, `column "role" of public.members, which is not readable`},
		{[]string{"where", "project_id IN (SELECT id FROM projects WHERE id IN (SELECT project_id FROM members WHERE role = 'owner'))"}, `column "role" of public.members`},
	}
	for _, c := range refused {
		_, err := sqRead(t, e, "alice", "pubnotes", c.kv...)
		var re *httpapi.ReadError
		if !errors.As(err, &re) || re.Status != http.StatusForbidden || !strings.Contains(re.Message, c.want) {
			t.Errorf("%v: %v, want 403 …%s…", c.kv, err, c.want)
		}
	}
	// An invalid subquery is a 400 on where.
	_, err := sqRead(t, e, "alice", "pubnotes", "where", "project_id IN (SELECT user_id FROM members)")
	var re *httpapi.ReadError
	if !errors.As(err, &re) || re.Status != http.StatusBadRequest || re.Field != "where" || !strings.Contains(re.Message, "has type int4 but the subquery returns text") {
		t.Errorf("a subquery of the wrong type: %v, want a 400", err)
	}
}

// TestSubqueryWriteCheck: a write check with a subquery accepts a
// member's write and refuses a non-member's, evaluated inside the write's
// transaction (a membership inserted by the same transaction counts).
func TestSubqueryWriteCheck(t *testing.T) {
	e := newSubqueryEnv(t)
	alice, carol := hs256(t, claims("alice", nil)), hs256(t, claims("carol", nil))
	wantAccepted(t, e.post(alice, "c", insert("tasks", map[string]any{"id": 100, "project_id": 1, "title": "mine"})))
	wantForbidden(t, e.post(alice, "c", insert("tasks", map[string]any{"id": 101, "project_id": 3, "title": "bob's"})))
	wantForbidden(t, e.post(carol, "cc", insert("tasks", map[string]any{"id": 102, "project_id": 1, "title": "x"})))
	// Moving a task to a project of someone else's, or touching theirs.
	wantForbidden(t, e.post(alice, "c", update("tasks", map[string]any{"id": 100}, map[string]any{"project_id": 3})))
	wantForbidden(t, e.post(alice, "c", del("tasks", map[string]any{"id": 3})))
	wantAccepted(t, e.post(alice, "c", update("tasks", map[string]any{"id": 100}, map[string]any{"project_id": 2})))
	wantAccepted(t, e.post(alice, "c", del("tasks", map[string]any{"id": 1})))
	if got := sqIDs(t, e, `SELECT id FROM tasks WHERE id IN (1, 3, 100, 101, 102) AND project_id <> 1`); !slices.Equal(got, []int{3, 100}) {
		t.Errorf("tasks 3 and 100 (moved to project 2) should be there, 1, 101 and 102 not: %v", got)
	}
	// The check sees the transaction's own writes: carol cannot make
	// herself a member (members has no write rule), and a rule table she
	// may write is evaluated with her rows.
	rules, err := auth.CompileRulesWith(context.Background(), &postgres.Inspector{Pool: e.pool}, []byte(`{"tables": {
	  "members": {"write": {"operations": ["insert"], "check": "user_id = $claims.sub"}},
	  "tasks": {"write": {"operations": ["insert"], "check": "project_id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)"}}}}`),
		auth.RulesOptions{Subqueries: true})
	if err != nil {
		t.Fatal(err)
	}
	e.policy.Rules = rules
	e.restart(e.policy.Options(defaultOptions()))
	wantAccepted(t, e.post(carol, "d",
		insert("members", map[string]any{"project_id": 4, "user_id": "carol"}),
		insert("tasks", map[string]any{"id": 103, "project_id": 4, "title": "new"})))
	wantForbidden(t, e.post(carol, "d", insert("tasks", map[string]any{"id": 104, "project_id": 1, "title": "x"})))
	if n := e.count(`SELECT count(*) FROM tasks WHERE id IN (103, 104)`); n != 1 {
		t.Errorf("task 103 should be there, 104 not: %d rows", n)
	}
	// After DDL that the check no longer fits, it refuses (fail closed).
	if _, err := e.pool.Exec(context.Background(), `ALTER TABLE members RENAME COLUMN user_id TO uid`); err != nil {
		t.Fatal(err)
	}
	wantForbidden(t, e.post(carol, "d", insert("tasks", map[string]any{"id": 105, "project_id": 4, "title": "after DDL"})))
	if !rules.CheckUsesTx(volt.Mutation{Op: volt.OpInsert, Table: "tasks"}) || rules.CheckUsesTx(volt.Mutation{Op: volt.OpInsert, Table: "members"}) {
		t.Errorf("CheckUsesTx: only tasks' check has a subquery")
	}
}
