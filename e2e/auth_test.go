package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	wire "github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

const authSecret = "e2e-secret-0123456789abcdef0123456789"

const authRules = `{
  "tables": {
    "todos": {"write": {"operations": ["insert", "update"], "columns": ["id", "owner_id", "title"],
                        "check": "owner_id = $claims.sub"}}
  }
}`

// TestAuthServe runs volt serve with an HS256 secret, an issuer and a
// rules file: requests without a valid token are 401, rules decide rows,
// and tables without a rule are not writable.
func TestAuthServe(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE todos (id text PRIMARY KEY, owner_id text NOT NULL, title text NOT NULL DEFAULT '')`,
		`CREATE TABLE secrets (id int PRIMARY KEY)`)
	rules := writeFile(t, "rules.json", authRules)
	v := startVolt(t, db, "VOLT_AUTH_JWT_SECRET="+authSecret, "VOLT_AUTH_ISSUER=https://issuer.test", "VOLT_RULES="+rules)

	insert := func(table, id, owner string) wire.Mutation {
		return wire.Mutation{Op: wire.OpInsert, Table: table, Values: map[string]any{"id": id, "owner_id": owner}}
	}
	status, _ := postAuth(t, v, "", "alice:web-1", 1, insert("todos", "a1", "alice"))
	if status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", status)
	}
	wrongIssuer := authToken(t, "alice", "https://evil.test", time.Hour)
	if status, _ := postAuth(t, v, wrongIssuer, "alice:web-1", 1, insert("todos", "a1", "alice")); status != http.StatusUnauthorized {
		t.Fatalf("wrong issuer: %d", status)
	}
	expired := authToken(t, "alice", "https://issuer.test", -time.Hour)
	if status, _ := postAuth(t, v, expired, "alice:web-1", 1, insert("todos", "a1", "alice")); status != http.StatusUnauthorized {
		t.Fatalf("expired: %d", status)
	}

	alice := authToken(t, "alice", "https://issuer.test", time.Hour)
	_, rs := postAuth(t, v, alice, "alice:web-1", 1, insert("todos", "a1", "alice"))
	_, rs2 := postAuth(t, v, alice, "alice:web-1", 2, insert("todos", "b1", "bob"))
	_, rs3 := postAuth(t, v, alice, "alice:web-1", 3, wire.Mutation{Op: wire.OpInsert, Table: "secrets", Values: map[string]any{"id": 1}})
	_, rs4 := postAuth(t, v, alice, "alice:web-1", 4, wire.Mutation{Op: wire.OpDelete, Table: "todos", Key: map[string]any{"id": "a1"}})
	if rs[0].Status != wire.StatusAccepted || rs2[0].Code != wire.CodeForbidden || rs3[0].Code != wire.CodeForbidden || rs4[0].Code != wire.CodeForbidden {
		t.Fatalf("results: %+v %+v %+v %+v", rs, rs2, rs3, rs4)
	}
	if !strings.Contains(v.Log(), "applies the write rules") {
		t.Fatalf("start-up log does not describe the policy:\n%s", v.Log())
	}
}

// TestAuthBadRules: volt serve refuses to start with a rules file that
// does not compile, and says why in one sentence.
func TestAuthBadRules(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE todos (id text PRIMARY KEY, owner_id text NOT NULL)`)
	bad := writeFile(t, "bad.json", `{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner = $claims.sub"}}}}`)
	out := serveFails(t, db, "VOLT_AUTH_JWT_SECRET="+authSecret, "VOLT_RULES="+bad)
	if want := "volt: rules file " + bad + ": tables.todos.write.check: At location 0: unknown reference owner"; !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
	// Rules about claims without a key to verify them are refused too.
	good := writeFile(t, "good.json", `{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner_id = $claims.sub"}}}}`)
	if out := serveFails(t, db, "VOLT_RULES="+good); !strings.Contains(out, "refers to $claims, but no JWT key is configured") {
		t.Fatalf("rules with claims and no key:\n%s", out)
	}
	if out := serveFails(t, db, "VOLT_AUTH_JWT_SECRET=short"); !strings.Contains(out, "volt: JWT configuration: the HS256 secret is 5 bytes; it must be at least 32") {
		t.Fatalf("short secret:\n%s", out)
	}
}

// serveFails runs volt serve with env and returns its output; it must exit
// with an error.
func serveFails(t *testing.T, db string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port := freePort(t)
	cmd := exec.CommandContext(ctx, voltBin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db, "VOLT_PORT="+strconv.Itoa(port), "VOLT_STORAGE_DIR="+t.TempDir(),
		"VOLT_REPLICATION_STREAM_ID=s"+strconv.Itoa(port))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("volt serve %v did not fail:\n%s", env, out)
	}
	return string(out)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func authToken(t *testing.T, sub, iss string, ttl time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "iss": iss, "exp": time.Now().Add(ttl).Unix(),
	}).SignedString([]byte(authSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// postAuth sends one transaction with a bearer token (none when empty).
func postAuth(t *testing.T, v *volt, token, client string, seq int64, ms ...wire.Mutation) (int, []wire.MutationResult) {
	t.Helper()
	body, _ := json.Marshal(wire.MutationRequest{ClientID: client, Transactions: []wire.ClientTransaction{{Seq: seq, Mutations: ms}}})
	req, _ := http.NewRequest(http.MethodPost, v.URL+wire.MutationsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out wire.MutationResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, out.Results
}
