package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	wire "github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// postMutations sends a request to volt's write endpoint.
func postMutations(t *testing.T, v *volt, req wire.MutationRequest) []wire.MutationResult {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post(v.URL+wire.MutationsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out wire.MutationResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %v", wire.MutationsPath, resp.StatusCode, err)
	}
	return out.Results
}

// TestMutationsReceiptAndTxid writes through volt serve and reads the
// write back twice: the receipt through a shape on volt.receipts, and the
// row through its shape with the returned txid in its txids header.
func TestMutationsReceiptAndTxid(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE todos (id text PRIMARY KEY, title text NOT NULL)`)
	// The exact commit LSN ("wait": "lsn") is what this test checks: give
	// replication on a loaded machine more than the default wait (50 ms)
	// to report it.
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=2s", "VOLT_INSECURE_WRITES=true", "VOLT_WRITE_LSN_WAIT=2s")

	todos := newFollower(v, "table", "todos")
	todos.catchUp(t)
	receipts := newFollower(v, "table", "volt.receipts", "where", "client_id = 'web-1'")
	receipts.catchUp(t)

	rs := postMutations(t, v, wire.MutationRequest{ClientID: "web-1", Wait: wire.WaitLSN, Transactions: []wire.ClientTransaction{
		{Seq: 1, Mutations: []wire.Mutation{{Op: wire.OpInsert, Table: "todos", Values: map[string]any{"id": "a", "title": "hello"}}}},
		{Seq: 2, Mutations: []wire.Mutation{{Op: wire.OpDelete, Table: "todos", Key: map[string]any{"id": "missing"}}}},
	}})
	if rs[0].Status != wire.StatusAccepted || rs[1].Code != wire.CodeConflict {
		t.Fatalf("results %+v", rs)
	}
	postMutations(t, v, wire.MutationRequest{ClientID: "web-2", Transactions: []wire.ClientTransaction{{Seq: 1}}})

	receipts.pollUntil(t, "both receipts of web-1", func(rows map[string]map[string]*string) bool { return len(rows) == 2 })
	one := receipts.rows[`"volt"."receipts"/"web-1"/"1"`]
	if one == nil || *one["status"] != "accepted" || *one["txid"] != fmt.Sprint(rs[0].Txid) || *one["xid8"] != rs[0].Xid8 {
		t.Fatalf("receipt rows: %s", dump(receipts.rows))
	}
	if two := receipts.rows[`"volt"."receipts"/"web-1"/"2"`]; two == nil || *two["code"] != "conflict" {
		t.Fatalf("rejection receipt: %s", dump(receipts.rows))
	}

	// awaitTxId: the insert arrives with the returned txid, and at the
	// returned commit LSN.
	var found bool
	for i := 0; i < 20 && !found; i++ {
		r := todos.poll(t)
		for _, m := range r.Msgs {
			txids, _ := m.Headers["txids"].([]any)
			if m.op() == "insert" && len(txids) == 1 && txids[0] == float64(rs[0].Txid) {
				found = true
				if m.Headers["lsn"] != rs[0].LSN {
					t.Errorf("result lsn %s, but the change arrived at lsn %v", rs[0].LSN, m.Headers["lsn"])
				}
			}
		}
	}
	if !found {
		t.Fatalf("no insert with txids [%d]", rs[0].Txid)
	}

	// Without "wait", the answer does not wait for replication: its lsn is
	// an upper bound, at or after the commit LSN its change arrives at.
	def := postMutations(t, v, wire.MutationRequest{ClientID: "web-1", Transactions: []wire.ClientTransaction{
		{Seq: 3, Mutations: []wire.Mutation{{Op: wire.OpInsert, Table: "todos", Values: map[string]any{"id": "b", "title": "default"}}}},
	}})
	bound, err := strconv.ParseUint(def[0].LSN, 10, 64)
	if def[0].Status != wire.StatusAccepted || def[0].Txid == 0 || err != nil {
		t.Fatalf("default answer %+v", def[0])
	}
	found = false
	for i := 0; i < 20 && !found; i++ {
		for _, m := range todos.poll(t).Msgs {
			txids, _ := m.Headers["txids"].([]any)
			if m.op() == "insert" && len(txids) == 1 && txids[0] == float64(def[0].Txid) {
				found = true
				lsn, _ := m.Headers["lsn"].(string)
				if commit, err := strconv.ParseUint(lsn, 10, 64); err != nil || commit > bound {
					t.Errorf("default answer's lsn %d, but the change arrived at lsn %v", bound, m.Headers["lsn"])
				}
			}
		}
	}
	if !found {
		t.Fatalf("no insert with txids [%d]", def[0].Txid)
	}
}

// TestMutationsCORS: the write endpoint answers preflights like /v1/shape.
func TestMutationsCORS(t *testing.T) {
	v := startVolt(t, pgtest.NewDB(t))
	r := do(t, http.MethodOptions, v.URL+wire.MutationsPath, "Origin", "http://localhost:5173", "Access-Control-Request-Method", "POST")
	if r.Status != http.StatusNoContent || r.Header.Get("access-control-allow-origin") != "http://localhost:5173" || r.Header.Get("access-control-allow-headers") == "" {
		t.Fatalf("preflight: %d %v", r.Status, r.Header)
	}
}

// TestWritesRefusedWithoutRules: with no rules configured (and no
// -insecure-writes) the write endpoint refuses every request (403), and
// applies and records nothing.
func TestWritesRefusedWithoutRules(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE todos (id int PRIMARY KEY, title text)`)
	v := startVolt(t, db)
	status, _, body := postJSON(t, v.URL+wire.MutationsPath,
		`{"client_id":"c1","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":1,"title":"x"}}]}]}`)
	if status != 403 || !strings.Contains(string(body), `"code":"forbidden"`) || !strings.Contains(string(body), "no write rules") {
		t.Fatalf("write without rules: %d %s", status, body)
	}
	if rows := pgRows(t, db, "todos", 1, `SELECT id FROM todos`); len(rows) != 0 {
		t.Fatalf("a refused write was applied: %v", rows)
	}
}
