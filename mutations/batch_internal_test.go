package mutations

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// batchTestHandler is a Handler on a fresh database whose pool has one
// connection, so that requests that arrive while a batch runs share the
// next one.
func batchTestHandler(t *testing.T, schema ...string) (*Handler, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, schema...)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return New(pool, Options{}), pool
}

func batchTestCount(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func batchTestInsert(seq int64, id int) volt.ClientTransaction {
	return volt.ClientTransaction{Seq: seq, Mutations: []volt.Mutation{{Op: volt.OpInsert, Table: "items", Values: map[string]any{"id": id}}}}
}

// batchTestShare runs reqs in one batch: a first request blocks the only
// connection until they are all queued.
func batchTestShare(t *testing.T, h *Handler, reqs []*volt.MutationRequest) [][]volt.MutationResult {
	t.Helper()
	started, release := make(chan struct{}), make(chan struct{})
	h.Register("block", func(ctx context.Context, _ pgx.Tx, _ json.RawMessage) error {
		close(started)
		<-release
		return nil
	})
	first := make(chan []volt.MutationResult, 1)
	go func() {
		first <- h.Apply(context.Background(), nil, &volt.MutationRequest{ClientID: "first", Transactions: []volt.ClientTransaction{
			{Seq: 1, Mutations: []volt.Mutation{{Name: "block"}}}}})
	}()
	<-started
	results := make([][]volt.MutationResult, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = h.Apply(context.Background(), nil, req) }()
	}
	for {
		h.commits.mu.Lock()
		n := len(h.commits.queue)
		h.commits.mu.Unlock()
		if n == len(reqs) {
			break
		}
		<-time.After(time.Millisecond)
	}
	close(release)
	if r := <-first; r[0].Status != volt.StatusAccepted {
		t.Fatalf("first: %+v", r)
	}
	wg.Wait()
	return results
}

// TestSharedCommitFailureAppliesEachAlone: when the COMMIT of a batch
// that holds several clients' transactions fails (here a deferred foreign
// key violated outside every client transaction, once), each client
// transaction is applied again in a Postgres transaction of its own and
// decided: not retry (which, when the COMMIT fails each time, would
// answer retry forever). Each is decided once.
func TestSharedCommitFailureAppliesEachAlone(t *testing.T) {
	h, pool := batchTestHandler(t,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`CREATE TABLE parents (id int PRIMARY KEY)`,
		`CREATE TABLE children (id int PRIMARY KEY, parent int REFERENCES parents DEFERRABLE INITIALLY DEFERRED)`)
	var failed atomic.Bool
	var commits atomic.Int32
	h.beforeCommit = func(ctx context.Context, tx pgx.Tx) {
		commits.Add(1)
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM volt.receipts WHERE client_id = 'a'`).Scan(&n); err != nil {
			t.Error(err)
		}
		if n > 0 && !failed.Swap(true) {
			if _, err := tx.Exec(ctx, `SET CONSTRAINTS ALL DEFERRED; INSERT INTO children VALUES (1, 999)`); err != nil {
				t.Error(err)
			}
		}
	}
	reqs := []*volt.MutationRequest{
		{ClientID: "a", Transactions: []volt.ClientTransaction{batchTestInsert(1, 1), batchTestInsert(2, 1) /* rejected: duplicate */, batchTestInsert(3, 2)}},
		{ClientID: "b", Transactions: []volt.ClientTransaction{batchTestInsert(1, 10)}},
	}
	results := batchTestShare(t, h, reqs)
	if !failed.Load() {
		t.Fatal("no COMMIT failed")
	}
	check := func(what string, results [][]volt.MutationResult, replayed bool) {
		t.Helper()
		for i, rs := range results {
			for j, r := range rs {
				want := volt.StatusAccepted
				if i == 0 && j == 1 {
					want = volt.StatusRejected
				}
				if r.Status != want || r.Replayed != replayed {
					t.Fatalf("%s: request %d, seq %d: %+v", what, i, r.Seq, r)
				}
			}
		}
	}
	check("after the shared COMMIT failed", results, false)
	// The blocking request's, the shared one, then one per client
	// transaction.
	if n := commits.Load(); n != 2+int32(len(reqs[0].Transactions)+len(reqs[1].Transactions)) {
		t.Fatalf("%d COMMITs", n)
	}
	if n := batchTestCount(t, pool, `SELECT count(*) FROM items`); n != 3 {
		t.Fatalf("%d rows", n)
	}
	if n := batchTestCount(t, pool, `SELECT count(*) FROM volt.receipts WHERE client_id <> 'first'`); n != 4 {
		t.Fatalf("%d receipts", n)
	}
	var resent [][]volt.MutationResult
	for _, req := range reqs {
		resent = append(resent, h.Apply(context.Background(), nil, req))
	}
	check("resent", resent, true)
}

// TestSharedCommitFailureRejectsTheGuilty: a deferred foreign key created
// after the handler last looked for deferrable constraints is checked at
// the batch's COMMIT, not at the end of each client transaction. One of
// three clients sharing a batch violates it: the COMMIT fails, each client
// transaction is applied alone, and only the guilty one is rejected
// (constraint, naming the foreign key); the others are applied.
func TestSharedCommitFailureRejectsTheGuilty(t *testing.T) {
	h, pool := batchTestHandler(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	if r := h.Apply(context.Background(), nil, &volt.MutationRequest{ClientID: "warm", Transactions: []volt.ClientTransaction{batchTestInsert(1, 100)}}); r[0].Status != volt.StatusAccepted {
		t.Fatalf("%+v", r)
	}
	if _, err := pool.Exec(context.Background(), `CREATE TABLE parents (id int PRIMARY KEY);
		CREATE TABLE children (id int PRIMARY KEY, parent int CONSTRAINT children_parent_fk REFERENCES parents DEFERRABLE INITIALLY DEFERRED);
		INSERT INTO parents VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	child := func(client string, id, parent int) *volt.MutationRequest {
		return &volt.MutationRequest{ClientID: client, Transactions: []volt.ClientTransaction{{Seq: 1, Mutations: []volt.Mutation{
			{Op: volt.OpInsert, Table: "children", Values: map[string]any{"id": id, "parent": parent}}}}}}
	}
	results := batchTestShare(t, h, []*volt.MutationRequest{child("a", 1, 1), child("b", 2, 999), child("c", 3, 1)})
	for i, rs := range results {
		r := rs[0]
		if i == 1 {
			if r.Status != volt.StatusRejected || r.Code != volt.CodeConstraint || r.Constraint != "children_parent_fk" {
				t.Fatalf("the guilty client: %+v", r)
			}
			continue
		}
		if r.Status != volt.StatusAccepted {
			t.Fatalf("client %d: %+v", i, r)
		}
	}
	if n := batchTestCount(t, pool, `SELECT count(*) FROM children`); n != 2 {
		t.Fatalf("%d children", n)
	}
	if n := batchTestCount(t, pool, `SELECT count(*) FROM volt.receipts WHERE client_id IN ('a', 'b', 'c')`); n != 3 {
		t.Fatalf("%d receipts", n)
	}
	if r := h.Apply(context.Background(), nil, child("b", 2, 999)); r[0].Status != volt.StatusRejected || !r[0].Replayed || r[0].Constraint != "children_parent_fk" {
		t.Fatalf("resent: %+v", r)
	}
}

// TestTakeKeepsAConnectionForSmallJobs: the smallest queued jobs go first,
// a small one only with small ones, one job per client; large jobs wait
// while all connections but one run large batches.
func TestTakeKeepsAConnectionForSmallJobs(t *testing.T) {
	mk := func(client string, size int) *job {
		return &job{clientID: client, size: size, txs: make([]volt.ClientTransaction, 1)}
	}
	big, small1, small2, again := mk("big", 100), mk("s1", 1), mk("s2", 2), mk("s1", 1)
	c := &committer{max: 4, large: 3, queue: []*job{big, small1, small2, again}}
	if got := c.take(); len(got) != 2 || got[0] != small1 || got[1] != small2 {
		t.Fatalf("first batch %v", got)
	}
	if got := c.take(); len(got) != 1 || got[0] != again {
		t.Fatalf("second batch %v (the same client's next job)", got)
	}
	if got := c.take(); got != nil {
		t.Fatalf("a large job took the last connection while 3 large batches run: %v", got)
	}
	c.large = 2
	if got := c.take(); len(got) != 1 || got[0] != big {
		t.Fatalf("third batch %v", got)
	}
}

// TestRetryInTheMiddleSetsLastSeqBack: a client transaction that fails
// transiently (retry) in the middle of a batch leaves the seqs after it
// unrecorded, although the batch's claim advanced last_seq over them: the
// batch sets it back, so that the resent seqs are applied, not answered
// as replays of receipts that do not exist. Alone in its batch (no
// savepoint) as well as with others.
func TestRetryInTheMiddleSetsLastSeqBack(t *testing.T) {
	h, pool := batchTestHandler(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	var flaky atomic.Bool
	flaky.Store(true)
	h.Register("flaky", func(ctx context.Context, _ pgx.Tx, _ json.RawMessage) error {
		if flaky.Load() {
			return &retryError{err: errors.New("try again")}
		}
		return nil
	})
	flakyTx := func(seq int64) volt.ClientTransaction {
		return volt.ClientTransaction{Seq: seq, Mutations: []volt.Mutation{{Name: "flaky"}}}
	}
	apply := func(client string, txs ...volt.ClientTransaction) []volt.MutationResult {
		return h.Apply(context.Background(), nil, &volt.MutationRequest{ClientID: client, Transactions: txs})
	}
	want := func(rs []volt.MutationResult, statuses ...string) {
		t.Helper()
		for i, r := range rs {
			if r.Status != statuses[i] || r.Replayed {
				t.Fatalf("seq %d: %+v, want %s", r.Seq, r, statuses[i])
			}
		}
	}
	const a, r = volt.StatusAccepted, volt.StatusRetry
	want(apply("many", batchTestInsert(1, 1), flakyTx(2), batchTestInsert(3, 3)), a, r, r)
	want(apply("alone", flakyTx(1)), r)
	for client, last := range map[string]int{"many": 1, "alone": 0} {
		if n := batchTestCount(t, pool, `SELECT last_seq FROM volt.clients WHERE client_id = '`+client+`'`); n != last {
			t.Fatalf("%s: last_seq %d, want %d", client, n, last)
		}
	}
	flaky.Store(false)
	want(apply("many", flakyTx(2), batchTestInsert(3, 3)), a, a)
	want(apply("alone", flakyTx(1)), a)
	if n := batchTestCount(t, pool, `SELECT count(*) FROM volt.receipts`); n != 4 {
		t.Fatalf("%d receipts", n)
	}
}
