package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
)

// readRulesJSON covers every read rule form: a claims predicate with a
// column list, a predicate without claims, every row and column ({}), a
// nested claim, a table listed without read and (secrets) a table not
// listed at all.
const readRulesJSON = `{
  "tables": {
    "todos": {"read": {"columns": ["id", "owner_id", "title", "done"], "check": "owner_id = $claims.sub"},
              "write": {"operations": ["insert"], "check": "owner_id = $claims.sub"}},
    "notes": {"read": {"check": "org_id = $claims.org.id OR $claims.role = 'admin'"}},
    "items": {"read": {"check": "amount < 100"}},
    "app.things": {"read": {}},
    "readonly": {"write": {"operations": ["insert"]}}
  }
}`

// readEnv is a database with the tables and rows of the read tests, and a
// ReadPolicy over them.
type readEnv struct {
	*env
	policy *auth.ReadPolicy
	tables map[string]bool
}

func newReadEnv(t *testing.T) *readEnv {
	e := newEnv(t, nil, "")
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO todos (id, owner_id, title, org) VALUES ('a1', 'alice', 'a', 1), ('a2', 'alice', 'b', 1), ('b1', 'bob', 'c', 2), ('x1', 'x'' OR true', 'd', 3)`,
		`INSERT INTO notes VALUES (1, 10, 'ten'), (2, 20, 'twenty'), (3, NULL, 'none')`,
		`INSERT INTO items (id, amount) VALUES (1, 5), (2, 500)`,
		`INSERT INTO app.things VALUES (1), (2)`,
		`INSERT INTO volt.receipts (client_id, seq, status) VALUES ('alice', 1, 'accepted'), ('alice:tab', 1, 'accepted'), ('alicex', 1, 'accepted'), ('bob', 1, 'accepted'), ('a%', 1, 'accepted'), ('a%:1', 1, 'accepted')`,
	} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := auth.CompileRules(ctx, &postgres.Inspector{Pool: e.pool}, []byte(readRulesJSON))
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.JWTConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewShapeTokens(auth.DeriveShapeTokenKey(string(secret)), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &readEnv{env: e, policy: &auth.ReadPolicy{Verifier: v, Rules: rules, Tokens: tokens}}
}

// read runs AuthorizeRead for a request with authz (an Authorization
// header, none when empty) and the shape parameters kv, then, when
// allowed, the resulting shape against Postgres: it returns the ids of the
// rows the shape holds and its definition.
func (e *readEnv) read(t *testing.T, authz string, kv ...string) (ids []string, def shape.Definition, err error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/v1/shape", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	def = shape.Definition{Replica: shape.ReplicaDefault, Log: shape.LogFull}
	var table string
	for i := 0; i+1 < len(kv); i += 2 {
		switch k, v := kv[i], kv[i+1]; {
		case k == "table":
			table = v
			if def.Schema, def.Table, err = shape.ParseRelation(v); err != nil {
				t.Fatal(err)
			}
		case k == "where":
			def.Where = v
		case strings.HasPrefix(k, "params["):
			if def.Params == nil {
				def.Params = map[string]string{}
			}
			def.Params[k[7:len(k)-1]] = v
		case k == "columns":
			def.Columns, _ = shape.ParseColumns(v)
		case k == "replica":
			def.Replica = v
		}
	}
	req := &httpapi.ReadRequest{Table: table, Def: &def}
	if err := e.policy.AuthorizeRead(r, req); err != nil {
		return nil, def, err
	}
	if authz != "" && !req.Private {
		t.Errorf("a bearer request's answer is not marked private")
	}
	ctx := context.Background()
	tbl, err := (&postgres.Inspector{Pool: e.pool}).Table(ctx, def.Schema, def.Table)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := shape.New(def, tbl)
	if err != nil {
		t.Fatalf("the authorised definition %+v does not compile: %v", def, err)
	}
	q := "SELECT " + sh.Table.PrimaryKey[0] + "::text FROM " + postgres.QuoteIdent(def.Schema) + "." + postgres.QuoteIdent(def.Table)
	if f, _ := sh.Filter(); f != nil {
		q += " WHERE " + f.SQL()
	}
	rows, err := e.pool.Query(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, def, rows.Err()
}

func bearer(t *testing.T, sub string, extra map[string]any) string {
	return "Bearer " + hs256(t, claims(sub, extra))
}

func status(err error) int {
	var re *httpapi.ReadError
	if errors.As(err, &re) {
		return re.Status
	}
	if err == nil {
		return 200
	}
	return -1
}

func TestReadRules(t *testing.T) {
	e := newReadEnv(t)
	alice, bob := bearer(t, "alice", nil), bearer(t, "bob", nil)
	cases := []struct {
		name   string
		authz  string
		kv     []string
		status int
		ids    string
	}{
		{"claims predicate: alice", alice, []string{"table", "todos"}, 200, "a1,a2"},
		{"claims predicate: bob", bob, []string{"table", "todos"}, 200, "b1"},
		{"claims predicate: a sub that looks like SQL", bearer(t, "x' OR true", nil), []string{"table", "todos"}, 200, "x1"},
		{"claims predicate: no sub claim", bearer(t, "", map[string]any{"sub": nil}), []string{"table", "todos"}, 200, ""},
		{"user where narrows", alice, []string{"table", "todos", "where", "title = 'b'"}, 200, "a2"},
		{"user where cannot widen: OR true", alice, []string{"table", "todos", "where", "true OR true"}, 200, "a1,a2"},
		{"user where cannot widen: OR owner", alice, []string{"table", "todos", "where", "owner_id = 'bob' OR true"}, 200, "a1,a2"},
		{"user where with params", alice, []string{"table", "todos", "where", "id = $1 OR id = $2", "params[1]", "a1", "params[2]", "b1"}, 200, "a1"},
		{"injection: unbalanced parenthesis", alice, []string{"table", "todos", "where", "true) OR (true"}, 400, ""},
		{"injection: comment", alice, []string{"table", "todos", "where", "true --"}, 200, "a1,a2"},
		{"injection: statement split", alice, []string{"table", "todos", "where", "true; SELECT 1"}, 400, ""},
		{"injection: param value", alice, []string{"table", "todos", "where", "owner_id = $1", "params[1]", "bob' OR 'x'='x"}, 200, ""},
		{"hidden column in where", alice, []string{"table", "todos", "where", "org = 2"}, 403, ""},
		{"hidden column in columns", alice, []string{"table", "todos", "columns", "id,org"}, 403, ""},
		{"allowed columns", alice, []string{"table", "todos", "columns", "id,title"}, 200, "a1,a2"},
		{"no token", "", []string{"table", "todos"}, 401, ""},
		{"nested claim", bearer(t, "carol", map[string]any{"org": map[string]any{"id": 10}}), []string{"table", "notes"}, 200, "1"},
		{"role claim", bearer(t, "dave", map[string]any{"role": "admin"}), []string{"table", "notes"}, 200, "1,2,3"},
		{"claims missing", bob, []string{"table", "notes"}, 200, ""},
		{"claim of the wrong type", bearer(t, "eve", map[string]any{"org": map[string]any{"id": "1 OR true"}}), []string{"table", "notes"}, 403, ""},
		{"predicate without claims", bob, []string{"table", "items"}, 200, "1"},
		{"every row", bob, []string{"table", "app.things"}, 200, "1,2"},
		{"every row, user where", bob, []string{"table", "app.things", "where", "id = 2"}, 200, "2"},
		{"listed without read", alice, []string{"table", "readonly"}, 403, ""},
		{"not listed", alice, []string{"table", "secrets"}, 403, ""},
		{"receipts: own ids only", alice, []string{"table", "volt.receipts"}, 200, "alice,alice:tab"},
		{"receipts: where cannot widen", alice, []string{"table", "volt.receipts", "where", "client_id = 'bob' OR true"}, 200, "alice,alice:tab"},
		{"receipts: LIKE wildcards in sub", bearer(t, "a%", nil), []string{"table", "volt.receipts"}, 200, "a%,a%:1"},
		{"receipts: no sub", bearer(t, "", map[string]any{"sub": nil}), []string{"table", "volt.receipts"}, 403, ""},
		{"malformed bearer", "Bearer nope", []string{"table", "todos"}, 401, ""},
		{"other scheme", "Basic YTpi", []string{"table", "todos"}, 401, ""},
	}
	for _, c := range cases {
		ids, def, err := e.read(t, c.authz, c.kv...)
		if status(err) != c.status {
			t.Errorf("%s: %v (status %d), want status %d", c.name, err, status(err), c.status)
			continue
		}
		if err == nil && strings.Join(ids, ",") != c.ids {
			t.Errorf("%s: rows %v, want %s (where %q, params %v)", c.name, ids, c.ids, def.Where, def.Params)
		}
	}
}

// TestReadDefinitionPerClaims: the predicate's claim values are
// parameters of the definition, so users get different shapes, and the
// same user the same one.
func TestReadDefinitionPerClaims(t *testing.T) {
	e := newReadEnv(t)
	_, a1, _ := e.read(t, bearer(t, "alice", nil), "table", "todos", "where", "done = false")
	_, a2, _ := e.read(t, bearer(t, "alice", map[string]any{"extra": 1}), "table", "todos", "where", "done = false")
	_, b, _ := e.read(t, bearer(t, "bob", nil), "table", "todos", "where", "done = false")
	ka, _ := json.Marshal(a1)
	ka2, _ := json.Marshal(a2)
	kb, _ := json.Marshal(b)
	if string(ka) != string(ka2) || string(ka) == string(kb) {
		t.Fatalf("definitions:\n alice %s\n alice %s\n bob   %s", ka, ka2, kb)
	}
	if a1.Params["1"] != "alice" || strings.Contains(a1.Where, "alice") {
		t.Fatalf("the claim is not a parameter: %+v", a1)
	}
	if !slices.Equal(a1.Columns, []string{"id", "owner_id", "title", "done"}) {
		t.Fatalf("columns default to the readable ones: %v", a1.Columns)
	}
}

// TestReadAnonymous: without a Verifier, rules apply with every claim NULL
// and a bearer token is refused.
func TestReadAnonymous(t *testing.T) {
	e := newReadEnv(t)
	e.policy.Verifier, e.policy.Tokens = nil, nil
	if ids, _, err := e.read(t, "", "table", "app.things"); err != nil || len(ids) != 2 {
		t.Fatalf("anonymous {} rule: %v %v", ids, err)
	}
	if _, _, err := e.read(t, "", "table", "volt.receipts"); status(err) != 403 {
		t.Fatalf("anonymous receipts: %v", err)
	}
	if _, _, err := e.read(t, bearer(t, "alice", nil), "table", "app.things"); status(err) != 401 {
		t.Fatalf("bearer without a verifier: %v", err)
	}
}

// TestReadTokens: expired, forged and wrong-algorithm user tokens are 401.
func TestReadTokens(t *testing.T) {
	e := newReadEnv(t)
	expired := bearer(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	forged := "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef-xx"), claims("alice", nil))
	none := "Bearer " + sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", nil))
	for name, authz := range map[string]string{"expired": expired, "forged": forged, "alg none": none} {
		if _, _, err := e.read(t, authz, "table", "todos"); status(err) != 401 {
			t.Errorf("%s token: %v", name, err)
		}
	}
}

// TestShapeTokens: POST /v1/shape-token issues a token bound to the shape;
// requests that differ, expired tokens and forged ones are refused.
func TestShapeTokens(t *testing.T) {
	e := newReadEnv(t)
	srv := httptest.NewServer(e.policy.TokenHandler())
	defer srv.Close()
	issue := func(authz, body string) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	alice := bearer(t, "alice", nil)
	if st, out := issue("", `{"table": "todos"}`); st != 401 {
		t.Fatalf("no user token: %d %v", st, out)
	}
	if st, out := issue(alice, `{"table": "secrets"}`); st != 403 {
		t.Fatalf("unreadable table: %d %v", st, out)
	}
	if st, out := issue(alice, `{"table": "todos", "columns": ["id", "org"]}`); st != 403 {
		t.Fatalf("hidden column: %d %v", st, out)
	}
	st, out := issue(alice, `{"table": "todos", "where": "title = $1", "params": {"1": "b"}, "columns": "id,title"}`)
	if st != 200 || out["token"] == "" || out["expires_at"] == "" {
		t.Fatalf("issue: %d %v", st, out)
	}
	tok := "Bearer " + out["token"]
	if st, _ := issue(tok, `{"table": "todos"}`); st != 401 {
		t.Fatalf("a shape token exchanged for another: %d", st)
	}
	ids, _, err := e.read(t, tok, "table", "todos", "where", "title = $1", "params[1]", "b", "columns", "id,title")
	if err != nil || strings.Join(ids, ",") != "a2" {
		t.Fatalf("the token's own shape: %v %v", ids, err)
	}
	for name, kv := range map[string][]string{
		"table":   {"table", "app.things", "where", "title = $1", "params[1]", "b", "columns", "id,title"},
		"where":   {"table", "todos", "where", "title = $1 OR true", "params[1]", "b", "columns", "id,title"},
		"params":  {"table", "todos", "where", "title = $1", "params[1]", "c", "columns", "id,title"},
		"columns": {"table", "todos", "where", "title = $1", "params[1]", "b"},
		"replica": {"table", "todos", "where", "title = $1", "params[1]", "b", "columns", "id,title", "replica", "full"},
	} {
		if _, _, err := e.read(t, tok, kv...); status(err) != 403 || !strings.Contains(err.Error(), name) {
			t.Errorf("a request with another %s: %v", name, err)
		}
	}
	// Forged: the payload with a made-up signature; tampered: the payload
	// changed under the original signature.
	parts := strings.Split(out["token"], ".")
	tampered := parts[0] + "." + parts[1][:len(parts[1])-2] + "fQ." + parts[2]
	if _, _, err := e.read(t, "Bearer "+tampered, "table", "todos"); status(err) != 401 {
		t.Errorf("tampered shape token: %v", err)
	}
	forged := "Bearer " + parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	if _, _, err := e.read(t, forged, "table", "todos", "where", "title = $1", "params[1]", "b", "columns", "id,title"); status(err) != 401 {
		t.Errorf("forged shape token: %v", err)
	}
	// Expired: a token from a clock an hour back.
	past, _ := auth.NewShapeTokens(auth.DeriveShapeTokenKey(string(secret)), time.Minute, func() time.Time { return time.Now().Add(-time.Hour) })
	pastSrv := httptest.NewServer((&auth.ReadPolicy{Verifier: e.policy.Verifier, Rules: e.policy.Rules, Tokens: past}).TokenHandler())
	defer pastSrv.Close()
	req, _ := http.NewRequest(http.MethodPost, pastSrv.URL, strings.NewReader(`{"table": "todos"}`))
	req.Header.Set("Authorization", alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&old)
	resp.Body.Close()
	if _, _, err := e.read(t, "Bearer "+old["token"], "table", "todos"); status(err) != 401 || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired shape token: %v", err)
	}
	// A shape token is not a user token.
	e.policy.Tokens = nil
	if _, _, err := e.read(t, tok, "table", "todos", "where", "title = $1", "params[1]", "b", "columns", "id,title"); status(err) != 401 {
		t.Errorf("shape token without shape tokens enabled: %v", err)
	}
}
