package mutations_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/mutations"
)

func TestBadRequests(t *testing.T) {
	e := newEnv(t, mutations.Options{MaxBodyBytes: 4096}, todos)
	cases := []struct {
		body   string
		status int
		field  string
	}{
		{``, 400, "body"},
		{`   `, 400, "body"},
		{`{`, 400, "body"},
		{`[]`, 400, "body"},
		{`{"client_id":"c","transactions":[{"seq":1,"mutations":[]}]} trailing`, 400, "body"},
		{`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":"x"}]}]}`, 400, "body"},
		{`{"transactions":[{"seq":1,"mutations":[]}]}`, 400, "client_id"},
		{`{"client_id":"","transactions":[{"seq":1}]}`, 400, "client_id"},
		{`{"client_id":"a\u0000b","transactions":[{"seq":1}]}`, 400, "client_id"},
		{`{"client_id":"` + strings.Repeat("x", 300) + `","transactions":[{"seq":1}]}`, 400, "client_id"},
		{`{"client_id":"c"}`, 400, "transactions"},
		{`{"client_id":"c","transactions":[]}`, 400, "transactions"},
		{`{"client_id":"c","transactions":[{"seq":0}]}`, 400, "transactions"},
		{`{"client_id":"c","transactions":[{"seq":2},{"seq":2}]}`, 400, "transactions"},
		{`{"client_id":"c","transactions":[{"seq":1.5}]}`, 400, "body"},
		{`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":"` + strings.Repeat("x", 5000) + `"}}]}]}`, 413, ""},
	}
	for _, c := range cases {
		status, b := e.postRaw([]byte(c.body))
		if status != c.status {
			t.Errorf("%.60s: status %d, want %d (%s)", c.body, status, c.status, b)
			continue
		}
		var me volt.MutationError
		if err := json.Unmarshal(b, &me); err != nil || me.Message == "" {
			t.Errorf("%.60s: body %s is not a MutationError", c.body, b)
		}
		if c.field != "" && len(me.Errors[c.field]) == 0 {
			t.Errorf("%.60s: errors %v do not name %s", c.body, me.Errors, c.field)
		}
	}
	if n := e.count(`SELECT (SELECT count(*) FROM todos) + (SELECT count(*) FROM volt.receipts) + (SELECT count(*) FROM volt.clients)`); n != 0 {
		t.Fatalf("bad requests left %d rows", n)
	}
	resp, err := http.Get(e.srv.URL + volt.MutationsPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("allow") == "" {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

type user struct{ name string }

func TestAuthorizeAndCheck(t *testing.T) {
	opts := mutations.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorize: func(ctx context.Context, r *http.Request) (any, error) {
			switch tok := r.Header.Get("Authorization"); tok {
			case "Bearer alice", "Bearer bob":
				return user{strings.TrimPrefix(tok, "Bearer ")}, nil
			case "Bearer broken":
				return nil, errors.New("key server down")
			}
			return nil, fmt.Errorf("bad token: %w", mutations.ErrUnauthorized)
		},
		Check: func(ctx context.Context, principal any, m volt.Mutation, oldRow, newRow map[string]any) error {
			u := principal.(user)
			if m.Table != "todos" {
				return mutations.Reject(volt.CodeForbidden, "%s may not write %s", u.name, m.Table)
			}
			for _, r := range []map[string]any{oldRow, newRow} {
				if r != nil && r["title"] != u.name {
					return mutations.Reject(volt.CodeForbidden, "%s may only write own rows", u.name)
				}
			}
			return nil
		},
	}
	e := newEnv(t, opts, todos, `CREATE SCHEMA other`, `CREATE TABLE other.t (id int PRIMARY KEY)`)
	body, _ := json.Marshal(volt.MutationRequest{ClientID: "c", Transactions: []volt.ClientTransaction{txn(1, ins("todos", row{"id": "a", "title": "alice"}))}})
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer mallory"}} {
		status, b := e.postRaw(body, hdr...)
		var me volt.MutationError
		_ = json.Unmarshal(b, &me)
		if status != http.StatusUnauthorized || me.Code != volt.CodeUnauthorized {
			t.Fatalf("%v: %d %s", hdr, status, b)
		}
	}
	if status, _ := e.postRaw(body, "Authorization", "Bearer broken"); status != http.StatusServiceUnavailable {
		t.Fatalf("failing Authorize: %d", status)
	}
	if n := e.count(`SELECT (SELECT count(*) FROM todos) + (SELECT count(*) FROM volt.receipts)`); n != 0 {
		t.Fatal("unauthorised request applied something")
	}
	post := func(tok string, txs ...volt.ClientTransaction) []volt.MutationResult {
		body, _ := json.Marshal(volt.MutationRequest{ClientID: tok, Transactions: txs})
		status, b := e.postRaw(body, "Authorization", "Bearer "+tok)
		var resp volt.MutationResponse
		if err := json.Unmarshal(b, &resp); status != 200 || err != nil {
			t.Fatalf("%d %s", status, b)
		}
		return resp.Results
	}
	rs := post("alice",
		txn(1, ins("todos", row{"id": "a", "title": "alice"})),
		txn(2, ins("todos", row{"id": "b", "title": "bob"})),
		txn(3, ins("other.t", row{"id": 1})))
	wantAccepted(t, rs[0])
	wantRejected(t, rs[1], volt.CodeForbidden)
	wantRejected(t, rs[2], volt.CodeForbidden)
	// The old row is checked too: bob cannot take alice's row.
	wantRejected(t, post("bob", txn(1, upd("todos", row{"id": "a"}, row{"title": "bob"})))[0], volt.CodeForbidden)
	wantRejected(t, post("bob", txn(2, del("todos", row{"id": "a"})))[0], volt.CodeForbidden)
	if n := e.count(`SELECT count(*) FROM todos WHERE title = 'alice'`); n != 1 {
		t.Fatal("forbidden writes applied")
	}
}

// TestMountedInHTTPAPI: volt serve's router answers preflights and
// requires the API secret on the write endpoint.
func TestMountedInHTTPAPI(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos)
	srv := &httpapi.Server{Mutations: e.h, Config: httpapi.Config{Secret: "s3"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+volt.MutationsPath, nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("access-control-allow-methods") != "POST, OPTIONS" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	body := `{"client_id":"c","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":"a","title":"t"}}]}]}`
	for secret, want := range map[string]int{"": 401, "wrong": 401, "s3": 200} {
		resp, err := http.Post(ts.URL+volt.MutationsPath+"?secret="+secret, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("secret %q: %d, want %d", secret, resp.StatusCode, want)
		}
	}
	if n := e.count(`SELECT count(*) FROM todos`); n != 1 {
		t.Fatalf("%d rows", n)
	}
}
