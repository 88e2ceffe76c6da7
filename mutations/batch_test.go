package mutations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// TestRequestOf100RejectionInTheMiddle: a request of 100 transactions is
// applied in one Postgres transaction and one round trip; a transaction
// rejected in the middle rolls back alone (its savepoint), the ones that
// touch its row are dependent, and every other one is applied, sharing the
// batch's txid. With the rejection, the request takes a few more round
// trips, not one per transaction.
func TestRequestOf100RejectionInTheMiddle(t *testing.T) {
	e, rt := tracedEnv(t, mutations.Options{}, `CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL CHECK (v >= 0))`)
	wantAccepted(t, e.one("c", 1, ins("items", row{"id": 0, "v": 0}))) // warm-up: client row, catalog, statements
	wantAccepted(t, e.one("c", 2, upd("items", row{"id": 0}, row{"v": 1})))
	var txs []volt.ClientTransaction
	for i := 1; i <= 100; i++ {
		txs = append(txs, txn(int64(i+2), ins("items", row{"id": i, "v": 1})))
	}
	rt.reset()
	rs := e.post("c", txs...)
	if q, b := rt.queries.Load(), rt.batches.Load(); q != 0 || b != 1 {
		t.Fatalf("100 transactions: %d statements and %d batches, want 0 and 1", q, b)
	}
	for _, r := range rs {
		wantAccepted(t, r)
		if r.Txid != rs[0].Txid || r.Xid8 != rs[0].Xid8 || r.LSN != rs[0].LSN {
			t.Fatalf("seq %d: txid %d, xid8 %s, lsn %s; seq %d: %d, %s, %s", r.Seq, r.Txid, r.Xid8, r.LSN, rs[0].Seq, rs[0].Txid, rs[0].Xid8, rs[0].LSN)
		}
	}
	// Seq 152 (row 150) violates the check; the transactions of rows 151
	// and 180 update row 150 instead of inserting theirs, and are
	// dependent. (100 mutations: one chunk, one batch.)
	txs = nil
	for i := 101; i <= 200; i++ {
		m := ins("items", row{"id": i, "v": 1})
		switch i {
		case 150:
			m = ins("items", row{"id": i, "v": -1})
		case 151, 180:
			m = upd("items", row{"id": 150}, row{"v": 5})
		}
		txs = append(txs, txn(int64(i+2), m))
	}
	rt.reset()
	rs = e.post("c", txs...)
	if b := rt.batches.Load() + rt.queries.Load(); b > 25 {
		t.Fatalf("a request of 100 with one rejection took %d round trips", b)
	}
	for _, r := range rs {
		id := int(r.Seq - 2)
		switch id {
		case 150:
			wantRejected(t, r, volt.CodeConstraint)
		case 151, 180:
			wantRejected(t, r, volt.CodeDependent)
		default:
			wantAccepted(t, r)
		}
	}
	if n := e.count(`SELECT count(*) FROM items WHERE id BETWEEN 101 AND 200`); n != 97 {
		t.Fatalf("%d rows applied, want 97", n)
	}
	if n := e.count(`SELECT count(*) FROM items WHERE id IN (150, 151, 180)`); n != 0 {
		t.Fatalf("%d rows of rejected transactions", n)
	}
	if n := e.count(`SELECT count(*) FROM volt.receipts WHERE client_id = 'c' AND seq BETWEEN 103 AND 202 AND status = 'rejected'`); n != 3 {
		t.Fatalf("%d rejection receipts", n)
	}
	if n := e.count(`SELECT count(DISTINCT xid8) FROM volt.receipts WHERE client_id = 'c' AND seq BETWEEN 103 AND 202`); n != 1 {
		t.Fatalf("the request's receipts are in %d transactions", n)
	}
	if n := e.count(`SELECT last_seq FROM volt.clients WHERE client_id = 'c'`); n != 202 {
		t.Fatalf("last_seq %d", n)
	}
}

// TestGroupCommitManyClients: many clients, each its own client_id,
// each sending one transaction per request at the same time: transactions
// of different clients share Postgres transactions (group commit), every
// seq is decided exactly once, and every answer agrees with Postgres.
func TestGroupCommitManyClients(t *testing.T) {
	clients, perClient := 32, 25
	e := newEnv(t, mutations.Options{},
		`CREATE TABLE gc_log (client text, seq bigint, PRIMARY KEY (client, seq))`,
		`CREATE TABLE gc_uniq (v int PRIMARY KEY)`,
		`CREATE TABLE gc_counter (n int NOT NULL)`, `INSERT INTO gc_counter VALUES (0)`)
	e.h.Register("bump", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		_, err := tx.Exec(ctx, `UPDATE gc_counter SET n = n + 1`)
		return err
	})
	type answer struct {
		client string
		r      volt.MutationResult
	}
	var mu sync.Mutex
	var answers []answer
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		id := fmt.Sprintf("gc%d", c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(1); seq <= int64(perClient); {
				ms := []volt.Mutation{ins("gc_log", row{"client": id, "seq": seq})}
				if seq%5 == 0 {
					ms = append(ms, ins("gc_uniq", row{"v": seq})) // taken by the first client to get there
				}
				if seq%3 == 0 {
					ms = append(ms, named("bump", `{}`))
				}
				r := e.post(id, txn(seq, ms...))[0]
				if r.Status == volt.StatusRetry {
					continue
				}
				mu.Lock()
				answers = append(answers, answer{id, r})
				mu.Unlock()
				seq++
			}
		}()
	}
	wg.Wait()
	if len(answers) != clients*perClient {
		t.Fatalf("%d answers", len(answers))
	}
	accepted, bumps := 0, 0
	for _, a := range answers {
		inLog := e.count(`SELECT count(*) FROM gc_log WHERE client = $1 AND seq = $2`, a.client, a.r.Seq)
		var status, xid8 string
		if err := e.pool.QueryRow(context.Background(), `SELECT status, coalesce(xid8, '') FROM volt.receipts WHERE client_id = $1 AND seq = $2`, a.client, a.r.Seq).Scan(&status, &xid8); err != nil {
			t.Fatalf("%s seq %d: receipt: %v", a.client, a.r.Seq, err)
		}
		switch a.r.Status {
		case volt.StatusAccepted:
			accepted++
			if a.r.Seq%3 == 0 {
				bumps++
			}
			if inLog != 1 || status != volt.StatusAccepted || xid8 != a.r.Xid8 {
				t.Fatalf("%s seq %d accepted (%+v): log %d, receipt %s %s", a.client, a.r.Seq, a.r, inLog, status, xid8)
			}
		case volt.StatusRejected:
			if inLog != 0 || status != volt.StatusRejected || a.r.Code != volt.CodeConstraint || a.r.Seq%5 != 0 {
				t.Fatalf("%s seq %d rejected (%+v): log %d, receipt %s", a.client, a.r.Seq, a.r, inLog, status)
			}
		default:
			t.Fatalf("%s: %+v", a.client, a.r)
		}
	}
	if n := e.count(`SELECT count(*) FROM gc_log`); n != accepted {
		t.Fatalf("%d rows, %d accepted", n, accepted)
	}
	if n := e.count(`SELECT n FROM gc_counter`); n != bumps {
		t.Fatalf("counter %d, %d accepted bumps: not exactly once", n, bumps)
	}
	if n := e.count(`SELECT count(*) FROM gc_uniq`); n != perClient/5 {
		t.Fatalf("%d unique values", n)
	}
	shared := e.count(`SELECT count(*) FROM (SELECT xid8 FROM volt.receipts WHERE status = 'accepted' GROUP BY xid8 HAVING count(DISTINCT client_id) > 1) s`)
	txns := e.count(`SELECT count(DISTINCT xid8) FROM volt.receipts WHERE status = 'accepted'`)
	if shared == 0 {
		t.Fatalf("no Postgres transaction held more than one client's transactions (%d transactions for %d accepted)", txns, accepted)
	}
	t.Logf("%d accepted in %d Postgres transactions, %d of them shared by several clients", accepted, txns, shared)
}

// TestFirstWriteOneRoundTrip: a client's first write (no volt.clients row
// yet) goes in the same single round trip as any other; a new client's
// seq other than 1 is out_of_order and leaves its queue at 0.
func TestFirstWriteOneRoundTrip(t *testing.T) {
	e, rt := tracedEnv(t, mutations.Options{}, `CREATE TABLE items (id int PRIMARY KEY)`)
	wantAccepted(t, e.one("warm", 1, ins("items", row{"id": 0})))
	rt.reset()
	wantAccepted(t, e.one("new", 1, ins("items", row{"id": 1})))
	if q, b := rt.queries.Load(), rt.batches.Load(); q != 0 || b != 1 {
		t.Fatalf("a client's first write: %d statements and %d batches, want 0 and 1", q, b)
	}
	if r := e.one("newer", 3, ins("items", row{"id": 3})); r.Code != volt.CodeOutOfOrder || r.ExpectedSeq != 1 {
		t.Fatalf("seq 3 of a new client: %+v", r)
	}
	if n := e.count(`SELECT count(*) FROM volt.clients WHERE client_id = 'newer' AND last_seq <> 0`) + e.count(`SELECT count(*) FROM items WHERE id = 3`); n != 0 {
		t.Fatal("an out_of_order first write advanced the queue or left its row")
	}
	if n := e.count(`SELECT last_seq FROM volt.clients WHERE client_id = 'new'`); n != 1 {
		t.Fatalf("last_seq %d", n)
	}
}
