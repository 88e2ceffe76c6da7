package mutations_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// TestLostResponse: the transaction commits, the response is lost, the
// client sends the same seq again: one row, the same result.
func TestLostResponse(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos)
	req := &volt.MutationRequest{ClientID: "c", Transactions: []volt.ClientTransaction{txn(1, ins("todos", row{"id": "a", "title": "t"}))}}
	first := e.h.Apply(context.Background(), nil, req) // the answer goes nowhere
	wantAccepted(t, first[0])
	for i := 0; i < 3; i++ {
		again := e.one("c", 1, ins("todos", row{"id": "a", "title": "t"}))
		if !again.Replayed || again.Status != first[0].Status || again.Txid != first[0].Txid || again.Xid8 != first[0].Xid8 {
			t.Fatalf("replay %+v differs from %+v", again, first[0])
		}
	}
	if n := e.count(`SELECT count(*) FROM todos`); n != 1 {
		t.Fatalf("%d rows after replays", n)
	}
	// A replay together with the next seq applies only the new one.
	rs := e.post("c", txn(1, ins("todos", row{"id": "a", "title": "t"})), txn(2, ins("todos", row{"id": "b", "title": "t"})))
	if !rs[0].Replayed || rs[1].Replayed {
		t.Fatalf("results %+v", rs)
	}
	wantAccepted(t, rs[1])
	if n := e.count(`SELECT count(*) FROM todos`); n != 2 {
		t.Fatalf("%d rows", n)
	}
}

func TestOutOfOrder(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos)
	rs := e.post("c", txn(2, ins("todos", row{"id": "b", "title": "t"})), txn(3, ins("todos", row{"id": "c", "title": "t"})))
	for _, r := range rs {
		wantRejected(t, r, volt.CodeOutOfOrder)
		if r.ExpectedSeq != 1 {
			t.Fatalf("expected_seq %d", r.ExpectedSeq)
		}
	}
	if n := e.count(`SELECT count(*) FROM volt.receipts`) + e.count(`SELECT count(*) FROM todos`); n != 0 {
		t.Fatal("out-of-order transactions left traces")
	}
	// Not wedged: seq 1 then works, and so do 2 and 3.
	rs = e.post("c", txn(1, ins("todos", row{"id": "a", "title": "t"})), txn(2, ins("todos", row{"id": "b", "title": "t"})), txn(3, ins("todos", row{"id": "c", "title": "t"})))
	for _, r := range rs {
		wantAccepted(t, r)
	}
	r := e.one("c", 9, ins("todos", row{"id": "z", "title": "t"}))
	wantRejected(t, r, volt.CodeOutOfOrder)
	if r.ExpectedSeq != 4 {
		t.Fatalf("expected_seq %d, want 4", r.ExpectedSeq)
	}
	// Receipts pruned by an operator: a processed seq is behind, not re-applied.
	e.exec(`DELETE FROM volt.receipts WHERE seq = 1`)
	r = e.one("c", 1, ins("todos", row{"id": "a2", "title": "t"}))
	if r.Code != volt.CodeOutOfOrder || r.ExpectedSeq != 4 {
		t.Fatalf("pruned seq: %+v", r)
	}
}

// TestConcurrentSameClient sends the same seqs from many goroutines: each
// seq is applied once, and everyone sees the same results.
func TestConcurrentSameClient(t *testing.T) {
	e := newEnv(t, mutations.Options{}, `CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)`, `INSERT INTO counter VALUES (1, 0)`)
	var txs []volt.ClientTransaction
	for s := int64(1); s <= 20; s++ {
		txs = append(txs, txn(s, named("bump", `{}`)))
	}
	e.h.Register("bump", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		_, err := tx.Exec(ctx, `UPDATE counter SET n = n + 1`)
		return err
	})
	var wg sync.WaitGroup
	results := make([][]volt.MutationResult, 8)
	for g := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[g] = e.post("same", txs...)
		}()
	}
	wg.Wait()
	if n := e.count(`SELECT n FROM counter`); n != 20 {
		t.Fatalf("counter = %d, want 20 (each seq once)", n)
	}
	for g := range results {
		for i, r := range results[g] {
			wantAccepted(t, r)
			if r.Txid != results[0][i].Txid {
				t.Fatalf("seq %d: txid %d vs %d", r.Seq, r.Txid, results[0][i].Txid)
			}
		}
	}
}

func TestDependentChain(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos, `INSERT INTO todos (id, title) VALUES ('taken', 'x')`)
	rs := e.post("c",
		txn(1, ins("todos", row{"id": "taken", "title": "dup"})),                                                   // constraint
		txn(2, upd("todos", row{"id": "taken"}, row{"title": "edit"}), ins("todos", row{"id": "b", "title": "b"})), // dependent on 1
		txn(3, upd("todos", row{"id": "b"}, row{"done": true})),                                                    // dependent on 2 (row b)
		txn(4, ins("todos", row{"id": "c", "title": "c"})),                                                         // independent
		txn(5, del("todos", row{"id": "c"}), upd("todos", row{"id": "b"}, row{"n": 1})))                            // touches b: dependent on 2
	wantRejected(t, rs[0], volt.CodeConstraint)
	wantRejected(t, rs[1], volt.CodeDependent)
	wantRejected(t, rs[2], volt.CodeDependent)
	wantAccepted(t, rs[3])
	wantRejected(t, rs[4], volt.CodeDependent)
	if rs[1].Message != "depends on rejected seq 1" || rs[2].Message != "depends on rejected seq 2" {
		t.Fatalf("messages: %q %q", rs[1].Message, rs[2].Message)
	}
	if n := e.count(`SELECT count(*) FROM todos`); n != 2 {
		t.Fatalf("%d rows, want taken and c", n)
	}
	// A later request: the replayed rejection still makes a new seq that
	// touches its rows dependent, in the same request.
	rs = e.post("c", txn(3, upd("todos", row{"id": "b"}, row{"done": true})), txn(6, upd("todos", row{"id": "b"}, row{"n": 2})), txn(7, upd("todos", row{"id": "c"}, row{"n": 2})))
	wantRejected(t, rs[0], volt.CodeDependent)
	wantRejected(t, rs[1], volt.CodeDependent)
	wantAccepted(t, rs[2])
}

func TestNamedMutations(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos, `INSERT INTO todos (id, title) VALUES ('a', 'x'), ('b', 'y')`)
	e.h.Register("complete_all", func(ctx context.Context, tx pgx.Tx, args json.RawMessage) error {
		var a struct{ Except string }
		if err := json.Unmarshal(args, &a); err != nil {
			return mutations.Reject(volt.CodeInvalid, "args: %v", err)
		}
		if mutations.ClientID(ctx) != "c" {
			return errors.New("client id not passed")
		}
		_, err := tx.Exec(ctx, `UPDATE todos SET done = true WHERE id <> $1`, a.Except)
		return err
	})
	e.h.Register("refuse", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		_, _ = tx.Exec(ctx, `DELETE FROM todos`)
		return &mutations.Rejection{Code: "quota", Message: "over quota"}
	})
	e.h.Register("sqlerr", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		_, err := tx.Exec(ctx, `INSERT INTO todos (id) VALUES ('n')`)
		return err
	})
	wantAccepted(t, e.one("c", 1, ins("todos", row{"id": "c", "title": "z"}), named("complete_all", `{"except":"b"}`)))
	if n := e.count(`SELECT count(*) FROM todos WHERE done`); n != 2 {
		t.Fatalf("%d done", n)
	}
	r := e.one("c", 2, named("refuse", `{}`))
	wantRejected(t, r, "quota")
	if r.Message != "over quota" || e.count(`SELECT count(*) FROM todos`) != 3 {
		t.Fatalf("rejected named mutation: %+v", r)
	}
	r = e.one("c", 3, named("complete_all", `"not an object"`))
	wantRejected(t, r, volt.CodeInvalid)
	r = e.one("c", 4, named("sqlerr", `{}`))
	wantRejected(t, r, volt.CodeConstraint)
}
