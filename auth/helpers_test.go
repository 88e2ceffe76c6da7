package auth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// secret is the tests' HS256 key.
var secret = []byte("0123456789abcdef0123456789abcdef-test")

// testKeys are generated once per test binary (RSA generation is slow).
type testKeys struct {
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	pemRSA []byte // public key, PKIX PEM
	pemEC  []byte
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func getKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		keys.pemRSA = publicPEM(&keys.rsa.PublicKey)
		keys.pemEC = publicPEM(&keys.ec.PublicKey)
	})
	return keys
}

var (
	otherOnce sync.Once
	otherRSA  *rsa.PrivateKey
)

// getOtherRSA is an RSA key that the server does not know.
func getOtherRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	otherOnce.Do(func() {
		var err error
		if otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return otherRSA
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func mustPKCS8(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func p384PEM(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return publicPEM(&k.PublicKey)
}

func smallRSAPEM(t testing.TB) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return publicPEM(&k.PublicKey)
}

func publicPEM(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// claims returns valid registered claims for sub, with extra merged in.
func claims(sub string, extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": sub, "iss": "https://issuer.test", "aud": "volt",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	}
	for k, v := range extra {
		c[k] = v
		if v == nil {
			delete(c, k)
		}
	}
	return c
}

func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// hs256 signs c with the tests' secret.
func hs256(t testing.TB, c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, c) }

// fullConfig accepts HS256, RS256 and ES256 tokens from issuer.test for volt.
func fullConfig(t testing.TB) auth.JWTConfig {
	k := getKeys(t)
	return auth.JWTConfig{
		Secret: secret, PublicKeysPEM: append(append([]byte{}, k.pemRSA...), k.pemEC...),
		Issuer: "https://issuer.test", Audience: "volt",
	}
}

// schema is the tables the HTTP tests write to.
var schema = []string{
	`CREATE TABLE todos (id text PRIMARY KEY, owner_id text NOT NULL, title text NOT NULL DEFAULT '',
	   done boolean NOT NULL DEFAULT false, org int)`,
	`CREATE TABLE notes (id int PRIMARY KEY, org_id int, body text)`,
	`CREATE TABLE items (id int PRIMARY KEY, tags text[], meta jsonb, due timestamptz, amount numeric,
	   code uuid, owner text GENERATED ALWAYS AS (meta->>'owner') STORED)`,
	`CREATE TABLE secrets (id int PRIMARY KEY, v text)`,
	`CREATE TABLE readonly (id int PRIMARY KEY)`,
	`CREATE SCHEMA app`,
	`CREATE TABLE app.things (id int PRIMARY KEY)`,
}

// rulesJSON is the rules file of the HTTP tests.
const rulesJSON = `{
  "tables": {
    "todos": {"write": {"operations": ["insert", "update", "delete"],
                        "columns": ["id", "owner_id", "title", "done"],
                        "check": "owner_id = $claims.sub"}},
    "notes": {"write": {"operations": ["insert"],
                        "check": "org_id = $claims.org.id OR $claims.role = 'admin'"}},
    "items": {"write": {"operations": ["insert", "update"],
                        "check": "$claims.tag = ANY(tags) AND meta = '{\"ok\": true}' AND due > '2020-01-01' AND amount < 100 AND code IS NOT NULL"}},
    "readonly": {}
  },
  "mutations": {"complete_all": {}}
}`

// env is a database with the schema, a Handler with a Policy, and a server.
type env struct {
	t      testing.TB
	url    string
	pool   *pgxpool.Pool
	policy *auth.Policy
	h      *mutations.Handler
	srv    *httptest.Server
	seq    map[string]int64
}

func newEnv(t testing.TB, jc *auth.JWTConfig, rules string) *env {
	t.Helper()
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, schema...)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := mutations.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	p := &auth.Policy{}
	if jc != nil {
		if p.Verifier, err = auth.NewVerifier(*jc); err != nil {
			t.Fatal(err)
		}
	}
	if rules != "" {
		if p.Rules, err = auth.CompileRules(ctx, &postgres.Inspector{Pool: pool}, []byte(rules)); err != nil {
			t.Fatal(err)
		}
	}
	h := mutations.New(pool, p.Options(mutations.Options{}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: url, pool: pool, policy: p, h: h, srv: srv, seq: map[string]int64{}}
}

// postRaw sends one transaction of ms as client with the token (none when
// empty) and returns the status and body.
func (e *env) postRaw(token, client string, ms ...volt.Mutation) (int, []byte) {
	e.t.Helper()
	if token == "" {
		return e.postRawHeader("", client, ms...)
	}
	return e.postRawHeader("Bearer "+token, client, ms...)
}

// postRawHeader is postRaw with the Authorization header as given. Client
// ids are bound to the token's subject: client is sent as "<sub>:client"
// when the token has a sub claim (and client is not already bound to it).
func (e *env) postRawHeader(authz, client string, ms ...volt.Mutation) (int, []byte) {
	e.t.Helper()
	clientID := client
	if sub := subjectOf(authz); sub != "" && !strings.ContainsRune(sub, 0) && !auth.OwnsClientID(sub, client) {
		clientID = sub + ":" + client
	}
	body, _ := json.Marshal(volt.MutationRequest{ClientID: clientID, Transactions: []volt.ClientTransaction{{Seq: e.seq[client] + 1, Mutations: ms}}})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+volt.MutationsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// subjectOf returns the sub claim of a bearer token, unverified ("" when
// there is none).
func subjectOf(authz string) string {
	parts := strings.Split(strings.TrimPrefix(authz, "Bearer "), ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub any `json:"sub"`
	}
	_ = json.Unmarshal(payload, &c)
	s, _ := c.Sub.(string)
	return s
}

// post sends one transaction and returns its result; the client's seq
// advances when the result is final.
func (e *env) post(token, client string, ms ...volt.Mutation) volt.MutationResult {
	e.t.Helper()
	status, b := e.postRaw(token, client, ms...)
	if status != http.StatusOK {
		e.t.Fatalf("status %d: %s", status, b)
	}
	var resp volt.MutationResponse
	if err := json.Unmarshal(b, &resp); err != nil || len(resp.Results) != 1 {
		e.t.Fatalf("response %s: %v", b, err)
	}
	r := resp.Results[0]
	if r.Status != volt.StatusRetry {
		e.seq[client]++
	}
	return r
}

// count returns the number of rows that the SQL query counts.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func insert(table string, values map[string]any) volt.Mutation {
	return volt.Mutation{Op: volt.OpInsert, Table: table, Values: values}
}

func update(table string, key, values map[string]any) volt.Mutation {
	return volt.Mutation{Op: volt.OpUpdate, Table: table, Key: key, Values: values}
}

func del(table string, key map[string]any) volt.Mutation {
	return volt.Mutation{Op: volt.OpDelete, Table: table, Key: key}
}

func wantAccepted(t testing.TB, r volt.MutationResult) {
	t.Helper()
	if r.Status != volt.StatusAccepted {
		t.Fatalf("want accepted, got %+v", r)
	}
}

func wantForbidden(t testing.TB, r volt.MutationResult) {
	t.Helper()
	if r.Status != volt.StatusRejected || r.Code != volt.CodeForbidden {
		t.Fatalf("want forbidden, got %+v", r)
	}
}

// restart replaces the handler with one built from opts.
func (e *env) restart(opts mutations.Options) {
	e.h = mutations.New(e.pool, opts)
	e.srv.Config.Handler = e.h
}

func defaultOptions() mutations.Options { return mutations.Options{} }

func rejectQuota() error { return mutations.Reject("quota", "title not allowed") }
