package mutations

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// rtTracer counts what the write path sends to Postgres: round trips
// (a query, or a pipelined batch of them) and statements.
type rtTracer struct {
	mu         sync.Mutex
	roundTrips int
	statements int
	sqls       []string
}

func (c *rtTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roundTrips++
	c.statements++
	c.sqls = append(c.sqls, d.SQL)
	return ctx
}

func (c *rtTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *rtTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roundTrips++
	for _, q := range d.Batch.QueuedQueries {
		c.statements++
		c.sqls = append(c.sqls, q.SQL)
	}
	return ctx
}

func (c *rtTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *rtTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (c *rtTracer) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roundTrips, c.statements, c.sqls = 0, 0, nil
}

func (c *rtTracer) counts() (roundTrips, statements int, sqls []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roundTrips, c.statements, append([]string(nil), c.sqls...)
}

// rtHandler is a Handler whose pool (one connection) counts round trips.
func rtHandler(t *testing.T, opts Options, schema ...string) (*Handler, *rtTracer) {
	t.Helper()
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, schema...)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	tr := &rtTracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return New(pool, opts), tr
}

var rtIDs atomic.Int64

func rtInserts(first int64, n int) []volt.ClientTransaction {
	txs := make([]volt.ClientTransaction, n)
	for i := range txs {
		seq := first + int64(i)
		txs[i] = volt.ClientTransaction{Seq: seq, Mutations: []volt.Mutation{{Op: volt.OpInsert, Table: "items", Values: map[string]any{"id": rtIDs.Add(1), "title": "t"}}}}
	}
	return txs
}

func rtApply(t *testing.T, h *Handler, client string, txs []volt.ClientTransaction) []volt.MutationResult {
	t.Helper()
	rs := h.Apply(context.Background(), nil, &volt.MutationRequest{ClientID: client, Transactions: txs})
	if len(rs) != len(txs) {
		t.Fatalf("%d results for %d transactions", len(rs), len(txs))
	}
	return rs
}

// TestRequestOf100OneRoundTrip: a request of 100 one-row transactions
// (one client) is one round trip on a warm connection, with one statement
// per transaction (the row: no savepoints while nothing fails) and five
// for the batch (BEGIN, the claim, the receipts, COMMIT, the WAL
// position). (Slice 2: six statements per transaction, the client's row
// updated by each; slice 3: three, savepoint, row and release.)
func TestRequestOf100OneRoundTrip(t *testing.T) {
	h, tr := rtHandler(t, Options{}, `CREATE TABLE items (id bigint PRIMARY KEY, title text)`)
	if rs := rtApply(t, h, "c", rtInserts(1, 3)); rs[2].Status != volt.StatusAccepted { // warm: statement cache, catalog
		t.Fatalf("%+v", rs)
	}
	next := int64(4)
	for _, n := range []int{1, 100} {
		tr.reset()
		txs := rtInserts(next, n)
		next += int64(n)
		for _, r := range rtApply(t, h, "c", txs) {
			if r.Status != volt.StatusAccepted || r.Replayed {
				t.Fatalf("%+v", r)
			}
		}
		rt, st, sqls := tr.counts()
		t.Logf("request of %d: %d round trips, %d statements", n, rt, st)
		want := 5 + n
		if rt != 1 || st != want {
			t.Fatalf("request of %d transactions: %d round trips and %d statements, want 1 and %d: %q", n, rt, st, want, sqls[:min(len(sqls), 12)])
		}
	}
}

// TestReplayOf300OneQuery: a request of 300 transactions that were all
// applied (a queue resent after a crash) is answered from the receipts
// read with one query, in two round trips (the claim that finds the seqs
// are not the next ones, then the ROLLBACK with that query); the answers
// are those of the first delivery, replayed. (Slice 2: several round
// trips per transaction, and each failure sent the rest of the batch
// again.)
func TestReplayOf300OneQuery(t *testing.T) {
	h, tr := rtHandler(t, Options{MaxTransactions: 300, MaxMutations: 300}, `CREATE TABLE items (id bigint PRIMARY KEY, title text)`)
	txs := rtInserts(1, 300)
	// Seq 150 is rejected (a duplicate key), and 151, which touches its
	// row, is dependent.
	txs[149].Mutations[0].Values["id"] = txs[0].Mutations[0].Values["id"]
	txs[150].Mutations[0].Values["id"] = txs[0].Mutations[0].Values["id"]
	first := rtApply(t, h, "c", txs)
	for i, r := range first {
		want := volt.StatusAccepted
		if i == 149 || i == 150 {
			want = volt.StatusRejected
		}
		if r.Status != want || r.Replayed {
			t.Fatalf("first delivery, seq %d: %+v", r.Seq, r)
		}
	}
	if first[150].Code != volt.CodeDependent {
		t.Fatalf("seq 151: %+v", first[150])
	}
	tr.reset()
	again := rtApply(t, h, "c", txs)
	rt, st, sqls := tr.counts()
	t.Logf("replay of 300: %d round trips, %d statements", rt, st)
	reads := 0
	for _, q := range sqls {
		if strings.Contains(q, "FROM volt.receipts") || strings.Contains(q, "JOIN volt.receipts") {
			reads++
		}
	}
	if rt > 2 || reads != 1 {
		t.Fatalf("replay of 300 transactions: %d round trips, %d reads of the receipts; want at most 2 and 1", rt, reads)
	}
	for i, r := range again {
		f := first[i]
		if !r.Replayed || r.Seq != f.Seq || r.Status != f.Status || r.Txid != f.Txid || r.Xid8 != f.Xid8 || r.Code != f.Code || r.Message != f.Message || r.Constraint != f.Constraint {
			t.Fatalf("seq %d resent: %+v, first %+v", r.Seq, r, f)
		}
	}
}

// TestResentQueueHalfApplied: a queue of 300 resent after its first 150
// were applied: the replays are answered from one read of the receipts,
// the rest applied, each seq once.
func TestResentQueueHalfApplied(t *testing.T) {
	h, tr := rtHandler(t, Options{MaxTransactions: 300, MaxMutations: 300}, `CREATE TABLE items (id bigint PRIMARY KEY, title text)`)
	txs := rtInserts(1, 300)
	first := rtApply(t, h, "c", txs[:150])
	tr.reset()
	rs := rtApply(t, h, "c", txs)
	rt, _, sqls := tr.counts()
	reads := 0
	for _, q := range sqls {
		if strings.Contains(q, "FROM volt.receipts") || strings.Contains(q, "JOIN volt.receipts") {
			reads++
		}
	}
	t.Logf("%d round trips, %d reads of the receipts", rt, reads)
	if reads != 1 || rt > 4 {
		t.Fatalf("%d round trips, %d reads of the receipts; want at most 4 (the failed claim, the read, two chunks) and 1", rt, reads)
	}
	for i, r := range rs {
		switch {
		case i < 150 && (!r.Replayed || r.Status != volt.StatusAccepted || r.Txid != first[i].Txid):
			t.Fatalf("seq %d: %+v, first %+v", r.Seq, r, first[i])
		case i >= 150 && (r.Replayed || r.Status != volt.StatusAccepted):
			t.Fatalf("seq %d: %+v", r.Seq, r)
		}
	}
	var n, last int
	if err := h.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM items), (SELECT last_seq FROM volt.clients WHERE client_id = 'c')`).Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if n != 300 || last != 300 {
		t.Fatalf("%d rows, last_seq %d", n, last)
	}
}

// TestBatchWithoutSavepointsStartsOver: the transactions of a batch run
// without savepoints; when one fails (a duplicate key), the batch is
// rolled back and runs again with a savepoint per transaction, so that
// the failed one is rejected alone and the others are applied once. The
// next batch runs without savepoints again.
func TestBatchWithoutSavepointsStartsOver(t *testing.T) {
	h, tr := rtHandler(t, Options{}, `CREATE TABLE items (id bigint PRIMARY KEY, title text)`)
	txs := rtInserts(1, 3)
	txs[1].Mutations[0].Values["id"] = txs[0].Mutations[0].Values["id"]
	rs := rtApply(t, h, "c", txs)
	if rs[0].Status != volt.StatusAccepted || rs[1].Status != volt.StatusRejected || rs[1].Code != volt.CodeConstraint || rs[2].Status != volt.StatusAccepted {
		t.Fatalf("%+v", rs)
	}
	if rs[0].Txid != rs[2].Txid {
		t.Fatalf("seqs 1 and 3 in different transactions: %+v", rs)
	}
	var rows, receipts, last int
	if err := h.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM volt.receipts), (SELECT last_seq FROM volt.clients)`).Scan(&rows, &receipts, &last); err != nil {
		t.Fatal(err)
	}
	if rows != 2 || receipts != 3 || last != 3 {
		t.Fatalf("%d rows, %d receipts, last_seq %d; want 2, 3, 3", rows, receipts, last)
	}
	tr.reset()
	for _, r := range rtApply(t, h, "c", rtInserts(4, 3)) {
		if r.Status != volt.StatusAccepted {
			t.Fatalf("%+v", r)
		}
	}
	rt, st, sqls := tr.counts()
	if rt != 1 || st != 5+3 || slices.Contains(sqls, savepointSQL) {
		t.Fatalf("next batch: %d round trips, %d statements, want 1 and 8 without savepoints: %q", rt, st, sqls)
	}
}

// TestRejectionWithoutSavepointsStands: a transaction rejected in a batch
// without savepoints is not run again when the batch starts over with
// them: its rejection stands, though its Check would accept it the
// second time (volt demo's "reject the next write" switch does so), and
// the next transaction of its client, which touches its row, is rejected
// as dependent. Before, the rerun asked the Check again and applied both.
func TestRejectionWithoutSavepointsStands(t *testing.T) {
	var calls atomic.Int64
	check := func(_ context.Context, _ any, m volt.Mutation, _, _ map[string]any) error {
		if m.Op == volt.OpInsert && calls.Add(1) == 1 {
			return Reject("by_test", "rejected the first time only")
		}
		return nil
	}
	h, _ := rtHandler(t, Options{Check: check}, `CREATE TABLE items (id bigint PRIMARY KEY, title text)`)
	txs := []volt.ClientTransaction{
		{Seq: 1, Mutations: []volt.Mutation{{Op: volt.OpInsert, Table: "items", Values: map[string]any{"id": 1, "title": "doomed"}}}},
		{Seq: 2, Mutations: []volt.Mutation{{Op: volt.OpUpdate, Table: "items", Key: map[string]any{"id": 1}, Values: map[string]any{"title": "renamed"}}}},
	}
	rs := rtApply(t, h, "c", txs)
	if rs[0].Status != volt.StatusRejected || rs[0].Code != "by_test" || rs[1].Status != volt.StatusRejected || rs[1].Code != volt.CodeDependent {
		t.Fatalf("%+v, want seq 1 rejected by_test and seq 2 dependent", rs)
	}
	var rows int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM items`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("%d rows written by rejected transactions", rows)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the Check ran %d times for one insert", n)
	}
}
