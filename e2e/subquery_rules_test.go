package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	wire "github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// Read and write rules with subqueries (issue 16 items 4 and 6,
// docs/AUTH.md "Subqueries in rules"), against the binary.

// sqrRules: tasks and projects are readable by the members of their
// project (membership followed live), members by the user they name
// (without role), pubnotes by everyone, secrets by nobody; tasks are
// writable by members.
const sqrRules = `{
  "tables": {
    "members":  {"read": {"columns": ["project_id", "user_id"], "check": "user_id = $claims.sub"}},
    "projects": {"read": {"check": "id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)"}},
    "tasks":    {"read": {"check": "project_id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)"},
                 "write": {"operations": ["insert", "update"],
                           "check": "project_id IN (SELECT project_id FROM members WHERE user_id = $claims.sub)"}},
    "pubnotes": {"read": {}},
    "secrets":  {"write": {"operations": ["insert"]}}
  }
}`

var sqrSchema = []string{
	`CREATE TABLE members (project_id int, user_id text, role text, PRIMARY KEY (project_id, user_id))`,
	`CREATE TABLE projects (id int PRIMARY KEY, name text)`,
	`CREATE TABLE tasks (id int PRIMARY KEY, project_id int, title text)`,
	`CREATE TABLE pubnotes (id int PRIMARY KEY, project_id int, body text)`,
	`CREATE TABLE secrets (id int PRIMARY KEY)`,
	`INSERT INTO members VALUES (1, 'alice', 'owner'), (2, 'alice', 'viewer'), (2, 'bob', 'owner'), (3, 'bob', 'owner')`,
	`INSERT INTO projects VALUES (1, 'p1'), (2, 'p2'), (3, 'q3'), (4, 'p4')`,
	`INSERT INTO tasks SELECT i, i % 5, 't' || i FROM generate_series(1, 30) i`,
	`INSERT INTO pubnotes SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 5 END, 'n' || i FROM generate_series(1, 30) i`,
	`INSERT INTO secrets VALUES (1), (2)`,
	`ALTER TABLE members REPLICA IDENTITY FULL`,
	`ALTER TABLE tasks REPLICA IDENTITY FULL`,
	`ALTER TABLE pubnotes REPLICA IDENTITY FULL`,
	`ALTER TABLE projects REPLICA IDENTITY FULL`,
}

// sqrSetup starts volt with the flag, a JWT key and sqrRules.
func sqrSetup(t *testing.T, env ...string) (string, *volt) {
	t.Helper()
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, sqrSchema...)
	rules := writeFile(t, "rules.json", sqrRules)
	env = append([]string{sqFlag, "VOLT_LONG_POLL_TIMEOUT=3s", "VOLT_AUTH_JWT_SECRET=" + authSecret,
		"VOLT_AUTH_ISSUER=https://issuer.test", "VOLT_RULES=" + rules}, env...)
	return db, startVolt(t, db, env...)
}

func sqrBearer(t *testing.T, sub string) string {
	return "Bearer " + authToken(t, sub, "https://issuer.test", time.Hour)
}

// sqrShape follows a shape with an Authorization header as a client does
// (subqueries.md §9): rows with their tags and active conditions, move-in
// and move-out events applied to them, and the txids seen.
type sqrShape struct {
	v      *volt
	authz  string
	params []string
	handle string
	offset string
	cursor string
	live   bool
	rows   map[string]*sqrRow
	txids  map[int64]bool
}

type sqrRow struct {
	id    string
	tags  [][]string
	conds []bool
}

func sqrFollow(v *volt, authz string, params ...string) *sqrShape {
	return &sqrShape{v: v, authz: authz, params: params, offset: "-1", rows: map[string]*sqrRow{}, txids: map[int64]bool{}}
}

// poll makes one request (live once up to date) and applies the answer.
func (s *sqrShape) poll(t *testing.T) {
	t.Helper()
	kv := append(slices.Clone(s.params), "offset", s.offset)
	if s.handle != "" {
		kv = append(kv, "handle", s.handle)
	}
	if s.live {
		kv = append(kv, "live", "true", "cursor", s.cursor)
	}
	r := get(t, s.v.shapeURL(kv...), "Authorization", s.authz)
	if r.Status == 409 {
		t.Fatalf("GET %v: 409 (the shape was removed): %s", kv, r.Body)
	}
	if r.Status != 200 {
		t.Fatalf("GET %v: %d %s", kv, r.Status, r.Body)
	}
	s.handle, s.offset, s.cursor = r.Header.Get("electric-handle"), r.Header.Get("electric-offset"), r.Header.Get("electric-cursor")
	for _, m := range r.Msgs {
		s.apply(t, m)
	}
}

func (s *sqrShape) apply(t *testing.T, m message) {
	t.Helper()
	if txids, ok := m.Headers["txids"].([]any); ok {
		for _, x := range txids {
			if n, ok := x.(float64); ok {
				s.txids[int64(n)] = true
			}
		}
	}
	if m.control() == "up-to-date" {
		s.live = true
	}
	switch ev, _ := m.Headers["event"].(string); ev {
	case "move-in", "move-out":
		pats, _ := m.Headers["patterns"].([]any)
		for _, p := range pats {
			pat, _ := p.(map[string]any)
			pos, _ := pat["pos"].(float64)
			val, _ := pat["value"].(string)
			for _, row := range s.rows {
				for _, tag := range row.tags {
					if int(pos) < len(tag) && tag[int(pos)] == val && int(pos) < len(row.conds) {
						row.conds[int(pos)] = ev == "move-in"
					}
				}
			}
		}
		for k, row := range s.rows {
			if !row.included() {
				delete(s.rows, k)
			}
		}
		return
	}
	switch m.op() {
	case "insert", "update":
		row := s.rows[m.Key]
		if row == nil {
			row = &sqrRow{}
			s.rows[m.Key] = row
		}
		if id := m.Value["id"]; id != nil {
			row.id = *id
		}
		if tags, ok := m.Headers["tags"].([]any); ok {
			row.tags = nil
			for _, tag := range tags {
				str, _ := tag.(string)
				row.tags = append(row.tags, strings.Split(str, "/"))
			}
		}
		if conds, ok := m.Headers["active_conditions"].([]any); ok {
			row.conds = nil
			for _, c := range conds {
				b, _ := c.(bool)
				row.conds = append(row.conds, b)
			}
		}
	case "delete":
		delete(s.rows, m.Key)
	}
}

// included: some tag has every non-empty slot's condition true.
func (r *sqrRow) included() bool {
	if len(r.tags) == 0 {
		return true
	}
	for _, tag := range r.tags {
		ok := true
		for p, slot := range tag {
			if slot != "" && (p >= len(r.conds) || !r.conds[p]) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (s *sqrShape) ids() []string {
	var ids []string
	for _, r := range s.rows {
		ids = append(ids, r.id)
	}
	slices.Sort(ids)
	return ids
}

// catchUp polls until up to date.
func (s *sqrShape) catchUp(t *testing.T) {
	t.Helper()
	for i := 0; !s.live; i++ {
		if i > 1000 {
			t.Fatal("the shape never became up to date")
		}
		s.poll(t)
	}
}

// awaitTxid polls (long-polls once up to date) until a message of the
// transaction txid arrived and was followed by up-to-date: the signal
// that the shape holds its effect.
func (s *sqrShape) awaitTxid(t *testing.T, txid int64) {
	t.Helper()
	s.catchUp(t)
	deadline := time.Now().Add(30 * time.Second)
	for !s.txids[txid] {
		if time.Now().After(deadline) {
			t.Fatalf("txid %d never arrived; rows %v", txid, s.ids())
		}
		s.poll(t)
	}
}

// sqrTx runs the statements in one transaction and returns its txid.
func sqrTx(t *testing.T, db string, stmts ...string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var txid int64
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return tx.QueryRow(ctx, `SELECT pg_current_xact_id()::xid::text::bigint`).Scan(&txid)
	})
	if err != nil {
		t.Fatal(err)
	}
	return txid
}

// sqrIDs returns the ids the query selects, as text, sorted.
func sqrIDs(t *testing.T, db, query string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	slices.Sort(ids)
	return ids
}

// sqrMine is the SQL of the tasks a user may read.
func sqrMine(sub string) string {
	return "SELECT id::text FROM tasks WHERE project_id IN (SELECT project_id FROM members WHERE user_id = '" + sub + "')"
}

func sqrExpect(t *testing.T, what string, s *sqrShape, db, query string) {
	t.Helper()
	if got, want := s.ids(), sqrIDs(t, db, query); !slices.Equal(got, want) {
		t.Fatalf("%s: client rows %v, Postgres %v", what, got, want)
	}
}

// TestSubqueryRulesMembership: under a membership read rule each user's
// shape holds the tasks of their projects, and follows membership live:
// inserting a member row moves the project's tasks into that user's open
// shape, deleting it moves them out, and the other user's shape does not
// change. After each step the client's rows equal what Postgres says the
// user may read, once the step's transaction has reached the shape.
func TestSubqueryRulesMembership(t *testing.T) {
	db, v := sqrSetup(t)
	alice := sqrFollow(v, sqrBearer(t, "alice"), "table", "tasks")
	bob := sqrFollow(v, sqrBearer(t, "bob"), "table", "tasks")
	alice.catchUp(t)
	bob.catchUp(t)
	sqrExpect(t, "alice at start", alice, db, sqrMine("alice"))
	sqrExpect(t, "bob at start", bob, db, sqrMine("bob"))
	bobAtStart := bob.ids()

	// alice joins project 3: its tasks move in.
	alice.awaitTxid(t, sqrTx(t, db, `INSERT INTO members VALUES (3, 'alice', 'viewer')`))
	sqrExpect(t, "alice after joining project 3", alice, db, sqrMine("alice"))
	if !slices.Contains(alice.ids(), "3") {
		t.Fatalf("task 3 (project 3) did not move in: %v", alice.ids())
	}
	// alice leaves project 1: its tasks move out.
	alice.awaitTxid(t, sqrTx(t, db, `DELETE FROM members WHERE project_id = 1 AND user_id = 'alice'`))
	sqrExpect(t, "alice after leaving project 1", alice, db, sqrMine("alice"))
	if slices.Contains(alice.ids(), "1") {
		t.Fatalf("task 1 (project 1) did not move out: %v", alice.ids())
	}
	// New tasks: one in a project she left, one in a project she joined,
	// in one transaction.
	alice.awaitTxid(t, sqrTx(t, db, `INSERT INTO tasks VALUES (101, 1, 'left'), (103, 3, 'joined')`))
	sqrExpect(t, "alice after new tasks", alice, db, sqrMine("alice"))
	// bob's shape saw none of alice's membership changes; a task of the
	// project both are in reaches both.
	txid := sqrTx(t, db, `INSERT INTO tasks VALUES (102, 2, 'shared')`)
	alice.awaitTxid(t, txid)
	bob.awaitTxid(t, txid)
	sqrExpect(t, "alice at the end", alice, db, sqrMine("alice"))
	sqrExpect(t, "bob at the end", bob, db, sqrMine("bob"))
	if want := append(slices.Clone(bobAtStart), "103", "102"); !sqrSameSet(bob.ids(), want) {
		t.Fatalf("bob's rows %v, want %v", bob.ids(), want)
	}
	// Leaving and rejoining in one transaction changes nothing.
	bobTx := sqrTx(t, db, `DELETE FROM members WHERE project_id = 2 AND user_id = 'bob'`, `INSERT INTO members VALUES (2, 'bob', 'owner')`,
		`UPDATE tasks SET title = 'touched' WHERE id = 2`)
	bob.awaitTxid(t, bobTx)
	sqrExpect(t, "bob after leaving and rejoining", bob, db, sqrMine("bob"))
}

func sqrSameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestSubqueryRulesRequests: a request's own subquery must be on a table
// the caller may read (403 naming the table or column otherwise), and it
// sees only the rows the caller could read directly: alice's subquery on
// members gives alice's projects, not bob's (compared with the SQL alice
// could run with her rows), live as her membership changes. A shape token
// bound to a subquery shape works.
func TestSubqueryRulesRequests(t *testing.T) {
	db, v := sqrSetup(t)
	alice := sqrBearer(t, "alice")
	refused := []struct{ where, want string }{
		{`project_id IN (SELECT id FROM secrets)`, `table public.secrets is not readable`},
		{`project_id IN (SELECT project_id FROM members WHERE role = 'owner')`, `column \"role\" of public.members, which is not readable`},
	}
	for _, c := range refused {
		r := get(t, v.shapeURL("table", "pubnotes", "offset", "-1", "where", c.where), "Authorization", alice)
		var body struct{ Message, Code string }
		if r.Status != 403 || json.Unmarshal(r.Body, &body) != nil || body.Code != "forbidden" || !strings.Contains(string(r.Body), c.want) {
			t.Errorf("%s: %d %s, want 403 naming …%s…", c.where, r.Status, r.Body, c.want)
		}
	}
	where := `project_id IN (SELECT project_id FROM members)`
	mine := func(sub string) string {
		return "SELECT id::text FROM pubnotes WHERE project_id IN (SELECT project_id FROM members WHERE user_id = '" + sub + "')"
	}
	s := sqrFollow(v, alice, "table", "pubnotes", "where", where)
	s.catchUp(t)
	sqrExpect(t, "alice's subquery on members", s, db, mine("alice"))
	if all := sqrIDs(t, db, "SELECT id::text FROM pubnotes WHERE "+where); slices.Equal(s.ids(), all) {
		t.Fatalf("alice's subquery saw every member row: %v", all)
	}
	b := sqrFollow(v, sqrBearer(t, "bob"), "table", "pubnotes", "where", where)
	b.catchUp(t)
	sqrExpect(t, "bob's subquery on members", b, db, mine("bob"))
	// Nested: projects' own rule (a subquery on members) narrows the
	// request's subquery on projects.
	nestedWhere := `project_id IN (SELECT id FROM projects WHERE name LIKE 'p%')`
	nestedSQL := "SELECT id::text FROM pubnotes WHERE project_id IN (SELECT id FROM projects WHERE name LIKE 'p%' AND id IN (SELECT project_id FROM members WHERE user_id = 'alice'))"
	n := sqrFollow(v, alice, "table", "pubnotes", "where", nestedWhere)
	n.catchUp(t)
	sqrExpect(t, "alice's nested subquery", n, db, nestedSQL)
	// Her membership changes move rows of her requests' shapes too. A
	// move two levels down may carry no txid, so the nested shape waits
	// for a later transaction that it shows (pubnotes of project 1).
	marker := 1000
	awaitNested := func() {
		marker++
		n.awaitTxid(t, sqrTx(t, db, fmt.Sprintf(`INSERT INTO pubnotes VALUES (%d, 1, 'marker')`, marker)))
	}
	s.awaitTxid(t, sqrTx(t, db, `INSERT INTO members VALUES (4, 'alice', 'viewer')`))
	sqrExpect(t, "alice after joining project 4", s, db, mine("alice"))
	awaitNested()
	sqrExpect(t, "alice's nested subquery after joining project 4", n, db, nestedSQL)
	s.awaitTxid(t, sqrTx(t, db, `DELETE FROM members WHERE project_id = 2 AND user_id = 'alice'`))
	sqrExpect(t, "alice after leaving project 2", s, db, mine("alice"))
	awaitNested()
	sqrExpect(t, "alice's nested subquery after leaving project 2", n, db, nestedSQL)
	// Another user's membership is not alice's: bob joining project 1
	// changes her shape by nothing (her next change arrives alone).
	sqrTx(t, db, `INSERT INTO members VALUES (1, 'bob', 'viewer')`)
	s.awaitTxid(t, sqrTx(t, db, `INSERT INTO pubnotes VALUES (101, 1, 'new')`))
	sqrExpect(t, "alice after bob joined project 1", s, db, mine("alice"))

	// A subset of a shape whose rule is a subquery (on-demand mode): the
	// rule's rows only.
	r := get(t, v.shapeURL("table", "tasks", "offset", "now", "log", "changes_only",
		"subset__where", "id > $1", "subset__params", `{"1":"10"}`, "subset__order_by", "id"), "Authorization", alice)
	var sb subsetBody
	if r.Status != 200 || json.Unmarshal(r.Body, &sb) != nil {
		t.Fatalf("subset under a subquery rule: %d %s", r.Status, r.Body)
	}
	var got []string
	for _, m := range sb.Data {
		got = append(got, *m.Value["id"])
	}
	slices.Sort(got)
	if want := sqrIDs(t, db, sqrMine("alice")+" AND id > 10"); !slices.Equal(got, want) {
		t.Fatalf("subset under a subquery rule: %v, want %v", got, want)
	}

	// A shape token bound to a subquery shape.
	req, _ := http.NewRequest(http.MethodPost, v.URL+"/v1/shape-token", strings.NewReader(`{"table": "pubnotes", "where": "`+where+`"}`))
	req.Header.Set("Authorization", alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out["token"] == "" {
		t.Fatalf("shape token for a subquery shape: %d %v", resp.StatusCode, out)
	}
	tok := sqrFollow(v, "Bearer "+out["token"], "table", "pubnotes", "where", where)
	tok.catchUp(t)
	sqrExpect(t, "with the shape token", tok, db, mine("alice"))
}

// TestSubqueryRulesWriteCheck: a write check with a subquery accepts a
// member's write and rejects a non-member's (forbidden, nothing written).
func TestSubqueryRulesWriteCheck(t *testing.T) {
	db, v := sqrSetup(t)
	alice, carol := authToken(t, "alice", "https://issuer.test", time.Hour), authToken(t, "carol", "https://issuer.test", time.Hour)
	task := func(id, project int) wire.Mutation {
		return wire.Mutation{Op: wire.OpInsert, Table: "tasks", Values: map[string]any{"id": id, "project_id": project, "title": "w"}}
	}
	cases := []struct {
		token, client string
		seq           int64
		m             wire.Mutation
		accepted      bool
	}{
		{alice, "alice:w", 1, task(201, 1), true},
		{alice, "alice:w", 2, task(202, 3), false},
		{carol, "carol:w", 1, task(203, 1), false},
		{alice, "alice:w", 3, wire.Mutation{Op: wire.OpUpdate, Table: "tasks", Key: map[string]any{"id": 201}, Values: map[string]any{"project_id": 3}}, false},
		{alice, "alice:w", 4, wire.Mutation{Op: wire.OpUpdate, Table: "tasks", Key: map[string]any{"id": 3}, Values: map[string]any{"title": "bob's"}}, false},
		{alice, "alice:w", 5, wire.Mutation{Op: wire.OpUpdate, Table: "tasks", Key: map[string]any{"id": 201}, Values: map[string]any{"project_id": 2}}, true},
	}
	for _, c := range cases {
		status, res := postAuth(t, v, c.token, c.client, c.seq, c.m)
		if status != 200 || len(res) != 1 {
			t.Fatalf("%v: %d %v", c.m, status, res)
		}
		if c.accepted && res[0].Status != wire.StatusAccepted {
			t.Errorf("%s's %v: %+v, want accepted", c.client, c.m, res[0])
		}
		if !c.accepted && (res[0].Status != wire.StatusRejected || res[0].Code != wire.CodeForbidden) {
			t.Errorf("%s's %v: %+v, want forbidden", c.client, c.m, res[0])
		}
	}
	if got := sqrIDs(t, db, `SELECT id::text || ':' || project_id || ':' || title FROM tasks WHERE id > 200 OR id = 3`); !slices.Equal(got, []string{"201:2:w", "3:3:t3"}) {
		t.Errorf("tasks written: %v", got)
	}
}

// TestSubqueryRulesNeedFlag: with -subqueries=false, a rules file whose
// read rule has a subquery does not start, and says which rule and which
// flag.
func TestSubqueryRulesNeedFlag(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, sqrSchema...)
	rules := writeFile(t, "rules.json", sqrRules)
	out := serveFails(t, db, "VOLT_SUBQUERIES=false", "VOLT_AUTH_JWT_SECRET="+authSecret, "VOLT_RULES="+rules)
	if want := "volt: rules file " + rules + ": tables.projects.read.check: subqueries in rules need subquery shapes, which this server has turned off: start volt without -subqueries=false (VOLT_SUBQUERIES)"; !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}
