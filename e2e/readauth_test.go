package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	wire "github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// readRules lets each user read (and write) their own todos, without the
// private column; every other table is readable only with the secret.
const readRules = `{
  "tables": {
    "todos": {"read":  {"columns": ["id", "owner_id", "title"], "check": "owner_id = $claims.sub"},
              "write": {"operations": ["insert", "update"], "columns": ["id", "owner_id", "title"], "check": "owner_id = $claims.sub"}},
    "secrets": {}
  }
}`

const readSecret = "read-secret-for-e2e"

func setupReadAuth(t *testing.T, env ...string) (db string, v *volt) {
	t.Helper()
	db = pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE todos (id text PRIMARY KEY, owner_id text NOT NULL, title text NOT NULL DEFAULT '', private text)`,
		`CREATE TABLE secrets (id int PRIMARY KEY)`,
		`INSERT INTO todos VALUES ('a1', 'alice', 'a one', 'p'), ('a2', 'alice', 'a two', 'p'), ('b1', 'bob', 'b one', 'p')`)
	rules := writeFile(t, "rules.json", readRules)
	env = append([]string{"VOLT_LONG_POLL_TIMEOUT=3s", "VOLT_AUTH_JWT_SECRET=" + authSecret, "VOLT_AUTH_ISSUER=https://issuer.test",
		"VOLT_RULES=" + rules}, env...)
	return db, startVolt(t, db, env...)
}

// pollAs is follower.poll with an Authorization header.
func (f *follower) pollAs(t *testing.T, authz string) response {
	t.Helper()
	kv := append([]string{}, f.params...)
	kv = append(kv, "offset", f.offset)
	if f.handle != "" {
		kv = append(kv, "handle", f.handle)
	}
	if f.upToDate {
		kv = append(kv, "live", "true", "cursor", f.cursor)
	}
	r := get(t, f.v.shapeURL(kv...), "Authorization", authz)
	if r.Status != 200 {
		t.Fatalf("GET %v as %s: %d %s", kv, authz[:min(len(authz), 20)], r.Status, r.Body)
	}
	f.handle, f.offset, f.cursor = r.Header.Get("electric-handle"), r.Header.Get("electric-offset"), r.Header.Get("electric-cursor")
	for _, m := range r.Msgs {
		if m.control() == "up-to-date" {
			f.upToDate = true
		}
		f.apply(m)
	}
	return r
}

func (f *follower) catchUpAs(t *testing.T, authz string) {
	t.Helper()
	for i := 0; !f.upToDate; i++ {
		if i > 1000 {
			t.Fatal("never up to date")
		}
		f.pollAs(t, authz)
	}
}

func ownTodos(t *testing.T, db, owner string) map[string]map[string]*string {
	return pgRows(t, db, "todos", 1, `SELECT id, owner_id, title FROM todos WHERE owner_id = '`+owner+`'`)
}

func expectStatus(t *testing.T, what string, r response, status int, inBody string) {
	t.Helper()
	if r.Status != status || !bytes.Contains(r.Body, []byte(inBody)) {
		t.Errorf("%s: %d %s; want %d with %q", what, r.Status, r.Body, status, inBody)
	}
}

// TestReadAuthServe: bearer requests get their own rows only, live
// changes included; requests without a token, for tables without a read
// rule or with hidden columns are refused; the secret reads everything;
// receipts are readable only by their own client.
func TestReadAuthServe(t *testing.T) {
	db, v := setupReadAuth(t)
	alice := "Bearer " + authToken(t, "alice", "https://issuer.test", time.Hour)
	bob := "Bearer " + authToken(t, "bob", "https://issuer.test", time.Hour)

	a := newFollower(v, "table", "todos")
	r := a.pollAs(t, alice)
	if cc := r.Header.Get("cache-control"); !strings.HasPrefix(cc, "private") || !strings.Contains(r.Header.Get("vary"), "Authorization") {
		t.Errorf("bearer response: cache-control %q, vary %q", cc, r.Header.Get("vary"))
	}
	a.catchUpAs(t, alice)
	if d := diffRows(a.rows, ownTodos(t, db, "alice")); d != "" {
		t.Fatalf("alice: %s", d)
	}
	b := newFollower(v, "table", "todos", "where", "title <> '' OR true")
	b.catchUpAs(t, bob)
	if d := diffRows(b.rows, ownTodos(t, db, "bob")); d != "" {
		t.Fatalf("bob (with OR true): %s", d)
	}
	if a.handle == b.handle {
		t.Fatal("alice and bob share a shape handle")
	}
	// Live: bob's new row and alice's go to their owners only.
	pgtest.Exec(t, db, `INSERT INTO todos VALUES ('b2', 'bob', 'b two', 'p'), ('a3', 'alice', 'a three', 'p')`)
	for i := 0; len(a.rows) < 3; i++ {
		if i > 20 {
			t.Fatalf("alice never got a3: %v", dump(a.rows))
		}
		a.pollAs(t, alice)
	}
	for i := 0; len(b.rows) < 2; i++ {
		if i > 20 {
			t.Fatalf("bob never got b2: %v", dump(b.rows))
		}
		b.pollAs(t, bob)
	}
	if d := diffRows(a.rows, ownTodos(t, db, "alice")); d != "" {
		t.Fatalf("alice after live changes: %s", d)
	}
	if d := diffRows(b.rows, ownTodos(t, db, "bob")); d != "" {
		t.Fatalf("bob after live changes: %s", d)
	}

	expectStatus(t, "no token", get(t, v.shapeURL("table", "todos", "offset", "-1")), 401, `"code":"unauthorized"`)
	expired := "Bearer " + authToken(t, "alice", "https://issuer.test", -time.Hour)
	expectStatus(t, "expired token", get(t, v.shapeURL("table", "todos", "offset", "-1"), "Authorization", expired), 401, "token expired")
	forged := "Bearer " + alice[len("Bearer "):len(alice)-4] + "AAAA"
	expectStatus(t, "forged token", get(t, v.shapeURL("table", "todos", "offset", "-1"), "Authorization", forged), 401, "unauthorized")
	expectStatus(t, "listed without read", get(t, v.shapeURL("table", "secrets", "offset", "-1"), "Authorization", alice), 403, "no read rule")
	expectStatus(t, "hidden column", get(t, v.shapeURL("table", "todos", "offset", "-1", "columns", "id,private"), "Authorization", alice), 403, `column \"private\"`)
	expectStatus(t, "hidden column in where", get(t, v.shapeURL("table", "todos", "offset", "-1", "where", "private = 'p'"), "Authorization", alice), 403, "not readable")
	expectStatus(t, "unbalanced where", get(t, v.shapeURL("table", "todos", "offset", "-1", "where", "true) OR (true"), "Authorization", alice), 400, "where")

	// Receipts: each client reads its own.
	post := func(token, client string, seq int64, id, owner string) {
		t.Helper()
		if st, _ := postAuth(t, v, token, client, seq, wire.Mutation{Op: wire.OpInsert, Table: "todos", Values: map[string]any{"id": id, "owner_id": owner, "title": "t"}}); st != 200 {
			t.Fatalf("write as %s: %d", client, st)
		}
	}
	post(alice[7:], "alice:web", 1, "a9", "alice")
	post(bob[7:], "bob:web", 1, "b9", "bob")
	post(bob[7:], "bob:web", 2, "b10", "alice") // rejected: forbidden
	for _, c := range []struct{ who, authz, client string }{{"alice", alice, "alice:web"}, {"bob", bob, "bob:web"}} {
		f := newFollower(v, "table", "volt.receipts", "where", "client_id LIKE '%' OR seq > 0")
		f.catchUpAs(t, c.authz)
		if len(f.rows) == 0 {
			t.Errorf("%s reads no receipts", c.who)
		}
		for k, row := range f.rows {
			if *row["client_id"] != c.client {
				t.Errorf("%s read receipt %s of %s", c.who, k, *row["client_id"])
			}
		}
	}
	if c := strings.Count(dump(newFollowerDone(t, v, bob).rows), "forbidden"); c != 1 {
		t.Errorf("bob's rejected write: %d forbidden receipts", c)
	}
}

func newFollowerDone(t *testing.T, v *volt, authz string) *follower {
	f := newFollower(v, "table", "volt.receipts")
	f.catchUpAs(t, authz)
	return f
}

// TestReadAuthShapeToken: the gatekeeper flow against the binary.
func TestReadAuthShapeToken(t *testing.T) {
	db, v := setupReadAuth(t, "VOLT_SECRET="+readSecret)
	alice := "Bearer " + authToken(t, "alice", "https://issuer.test", time.Hour)
	// The secret reads everything, as before; DELETE needs it.
	s := newFollower(v, "table", "todos", "secret", readSecret)
	s.catchUp(t)
	if len(s.rows) != 3 || s.rows[`"public"."todos"/"b1"`]["private"] == nil {
		t.Fatalf("with the secret: %v", dump(s.rows))
	}
	expectStatus(t, "DELETE without the secret", do(t, http.MethodDelete, v.shapeURL("table", "todos"), "Authorization", alice), 403, "secret")
	issue := func(authz, body string) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, v.URL+"/v1/shape-token", strings.NewReader(body))
		req.Header.Set("Authorization", authz)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, out := issue(alice, `{"table": "secrets"}`); st != 403 {
		t.Fatalf("token for an unreadable table: %d %v", st, out)
	}
	st, out := issue(alice, `{"table": "todos", "where": "title LIKE $1", "params": {"1": "a%"}}`)
	if st != 200 || out["token"] == "" {
		t.Fatalf("issue: %d %v", st, out)
	}
	tok := "Bearer " + out["token"]
	f := newFollower(v, "table", "todos", "where", "title LIKE $1", "params[1]", "a%")
	f.catchUpAs(t, tok)
	if d := diffRows(f.rows, ownTodos(t, db, "alice")); d != "" {
		t.Fatalf("with the shape token: %s", d)
	}
	expectStatus(t, "other where", get(t, v.shapeURL("table", "todos", "offset", "-1", "where", "title LIKE $1", "params[1]", "b%"), "Authorization", tok), 403, "params")
	expectStatus(t, "other table", get(t, v.shapeURL("table", "secrets", "offset", "-1"), "Authorization", tok), 403, "table")
}

// TestReadAuthProxy: through nginx (deploy/nginx/volt.conf), alice and
// bob request the same URLs and each receives only their own rows, both
// with the default private cache-control (nginx does not store) and with
// VOLT_AUTHORIZED_CACHE_PUBLIC (nginx stores one entry per Authorization).
func TestReadAuthProxy(t *testing.T) {
	for _, public := range []bool{false, true} {
		name := "private"
		var env []string
		if public {
			name, env = "public", []string{"VOLT_AUTHORIZED_CACHE_PUBLIC=true"}
		}
		t.Run(name, func(t *testing.T) {
			db, v := setupReadAuth(t, env...)
			p := startNginx(t, upstreamOf(v))
			pv := p.through()
			users := map[string]string{
				"alice": "Bearer " + authToken(t, "alice", "https://issuer.test", time.Hour),
				"bob":   "Bearer " + authToken(t, "bob", "https://issuer.test", time.Hour),
			}
			initial := pv.shapeURL("table", "todos", "offset", "-1")
			// Alternate users on the same URL, twice each.
			for round := 0; round < 2; round++ {
				for _, who := range []string{"alice", "bob"} {
					r := get(t, initial, "Authorization", users[who])
					if r.Status != 200 {
						t.Fatalf("%s round %d: %d %s", who, round, r.Status, r.Body)
					}
					for _, m := range r.Msgs {
						if m.Value != nil && *m.Value["owner_id"] != who {
							t.Fatalf("%s received %s's row %s through the proxy (X-Cache-Status %s)", who, *m.Value["owner_id"], m.Key, cacheStatus(r))
						}
					}
					want := "MISS"
					if public && round == 1 {
						want = "HIT"
					}
					if cacheStatus(r) != want {
						t.Errorf("%s round %d: X-Cache-Status %q, want %q", who, round, cacheStatus(r), want)
					}
				}
			}
			// Full sync through the proxy, live changes included.
			for who, authz := range users {
				f := newFollower(pv, "table", "todos")
				f.catchUpAs(t, authz)
				if d := diffRows(f.rows, ownTodos(t, db, who)); d != "" {
					t.Fatalf("%s through the proxy: %s", who, d)
				}
			}
			// No token: refused and not cached.
			expectStatus(t, "no token through the proxy", get(t, initial), 401, "unauthorized")
		})
	}
}

// TestReadAuthStartup: volt serve refuses a non-loopback address when
// nothing protects reads, unless told --insecure.
func TestReadAuthStartup(t *testing.T) {
	db := pgtest.NewDB(t)
	out := serveFails(t, db, "VOLT_HOST=0.0.0.0")
	if !strings.Contains(out, "volt: refusing to listen on 0.0.0.0 without VOLT_SECRET or a rules file") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Fatalf("output:\n%s", out)
	}
	v := startVolt(t, db, "VOLT_HOST=0.0.0.0", "VOLT_INSECURE=true")
	if !strings.Contains(v.Log(), "-insecure: listening on 0.0.0.0") {
		t.Fatalf("no warning:\n%s", v.Log())
	}
}
