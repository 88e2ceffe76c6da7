package mutations_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/mutations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is a database with the volt schema, a Handler and an HTTP server.
type env struct {
	t    testing.TB
	url  string
	pool *pgxpool.Pool
	h    *mutations.Handler
	srv  *httptest.Server
}

func newEnv(t testing.TB, opts mutations.Options, schema ...string) *env {
	t.Helper()
	url := pgtest.NewDB(t)
	return newEnvOn(t, url, opts, schema...)
}

func newEnvOn(t testing.TB, url string, opts mutations.Options, schema ...string) *env {
	t.Helper()
	if len(schema) > 0 {
		pgtest.Exec(t, url, schema...)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := mutations.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	h := mutations.New(pool, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: url, pool: pool, h: h, srv: srv}
}

// postRaw sends body as JSON (hdr may override the content type) and
// returns the status and the response body.
func (e *env) postRaw(body []byte, hdr ...string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+volt.MutationsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read: %v", err)
	}
	return resp.StatusCode, b
}

// post sends the transactions for client and returns the results.
func (e *env) post(client string, txs ...volt.ClientTransaction) []volt.MutationResult {
	e.t.Helper()
	body, err := json.Marshal(volt.MutationRequest{ClientID: client, Transactions: txs})
	if err != nil {
		e.t.Fatal(err)
	}
	status, b := e.postRaw(body)
	if status != http.StatusOK {
		e.t.Fatalf("POST: %d %s", status, b)
	}
	var resp volt.MutationResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		e.t.Fatalf("decode %s: %v", b, err)
	}
	if len(resp.Results) != len(txs) {
		e.t.Fatalf("%d results for %d transactions: %s", len(resp.Results), len(txs), b)
	}
	return resp.Results
}

// postWait sends the transactions for client asking for exact commit
// LSNs ("wait": "lsn") and returns the results.
func (e *env) postWait(client string, txs ...volt.ClientTransaction) []volt.MutationResult {
	e.t.Helper()
	body, err := json.Marshal(volt.MutationRequest{ClientID: client, Transactions: txs, Wait: volt.WaitLSN})
	if err != nil {
		e.t.Fatal(err)
	}
	status, b := e.postRaw(body)
	if status != http.StatusOK {
		e.t.Fatalf("POST: %d %s", status, b)
	}
	var resp volt.MutationResponse
	if err := json.Unmarshal(b, &resp); err != nil || len(resp.Results) != len(txs) {
		e.t.Fatalf("%s for %d transactions: %v", b, len(txs), err)
	}
	return resp.Results
}

// one posts a single transaction and returns its result.
func (e *env) one(client string, seq int64, ms ...volt.Mutation) volt.MutationResult {
	e.t.Helper()
	return e.post(client, txn(seq, ms...))[0]
}

// count runs a count query.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	if err := e.pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func txn(seq int64, ms ...volt.Mutation) volt.ClientTransaction {
	return volt.ClientTransaction{Seq: seq, Mutations: ms}
}

type row = map[string]any

func ins(table string, values row) volt.Mutation {
	return volt.Mutation{Op: volt.OpInsert, Table: table, Values: values}
}

func upd(table string, key, values row) volt.Mutation {
	return volt.Mutation{Op: volt.OpUpdate, Table: table, Key: key, Values: values}
}

func updFrom(table string, key, values, original row) volt.Mutation {
	return volt.Mutation{Op: volt.OpUpdate, Table: table, Key: key, Values: values, Original: original}
}

func del(table string, key row) volt.Mutation {
	return volt.Mutation{Op: volt.OpDelete, Table: table, Key: key}
}

func named(name string, args string) volt.Mutation {
	return volt.Mutation{Name: name, Args: json.RawMessage(args)}
}

func wantAccepted(t testing.TB, r volt.MutationResult) {
	t.Helper()
	if r.Status != volt.StatusAccepted {
		t.Fatalf("seq %d: want accepted, got %+v", r.Seq, r)
	}
}

func wantRejected(t testing.TB, r volt.MutationResult, code string) {
	t.Helper()
	if r.Status != volt.StatusRejected || r.Code != code {
		t.Fatalf("seq %d: want rejected %s, got %+v", r.Seq, code, r)
	}
}

const todos = `CREATE TABLE todos (id text PRIMARY KEY, title text NOT NULL, done boolean NOT NULL DEFAULT false, n int, meta jsonb, tags text[])`

func (e *env) exec(sql ...string) {
	e.t.Helper()
	pgtest.Exec(e.t, e.url, sql...)
}

// str runs a query returning text.
func (e *env) str(sql string) string {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return s
}
