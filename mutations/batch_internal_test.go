package mutations

import (
	"context"
	"encoding/json"
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

// TestSharedCommitFailureAnswersRetry: when the COMMIT of a batch that
// holds several clients' transactions fails (here a deferred foreign key
// violated outside every client transaction), every member is answered
// retry, accepted and rejected ones alike, and nothing of theirs is
// recorded; resent, each is decided once.
func TestSharedCommitFailureAnswersRetry(t *testing.T) {
	h, pool := batchTestHandler(t,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`CREATE TABLE parents (id int PRIMARY KEY)`,
		`CREATE TABLE children (id int PRIMARY KEY, parent int REFERENCES parents DEFERRABLE INITIALLY DEFERRED)`)
	// The first request blocks the only connection until two more
	// requests wait: those two then share a batch.
	started, release := make(chan struct{}), make(chan struct{})
	h.Register("block", func(ctx context.Context, _ pgx.Tx, _ json.RawMessage) error {
		close(started)
		<-release
		return nil
	})
	// The COMMIT of the first batch that wrote client a's receipts fails: a
	// foreign key deferred until COMMIT is violated outside every client
	// transaction's savepoint.
	var failed atomic.Bool
	h.beforeCommit = func(ctx context.Context, tx pgx.Tx) {
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
	first := make(chan []volt.MutationResult, 1)
	go func() {
		first <- h.Apply(context.Background(), nil, &volt.MutationRequest{ClientID: "first", Transactions: []volt.ClientTransaction{
			{Seq: 1, Mutations: []volt.Mutation{{Name: "block"}}}}})
	}()
	<-started
	reqs := []*volt.MutationRequest{
		{ClientID: "a", Transactions: []volt.ClientTransaction{batchTestInsert(1, 1), batchTestInsert(2, 1) /* rejected: duplicate */, batchTestInsert(3, 2)}},
		{ClientID: "b", Transactions: []volt.ClientTransaction{batchTestInsert(1, 10)}},
	}
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
	for i, rs := range results {
		for _, r := range rs {
			if r.Status != volt.StatusRetry {
				t.Fatalf("request %d: %+v after its batch's COMMIT failed", i, r)
			}
		}
	}
	if n := batchTestCount(t, pool, `SELECT count(*) FROM items`); n != 0 {
		t.Fatalf("%d rows after a failed COMMIT", n)
	}
	if n := batchTestCount(t, pool, `SELECT count(*) FROM volt.receipts WHERE client_id <> 'first'`); n != 0 {
		t.Fatalf("%d receipts after a failed COMMIT", n)
	}
	for i, req := range reqs {
		rs := h.Apply(context.Background(), nil, req)
		for j, r := range rs {
			want := volt.StatusAccepted
			if i == 0 && j == 1 {
				want = volt.StatusRejected
			}
			if r.Status != want || r.Replayed {
				t.Fatalf("resent request %d, seq %d: %+v", i, r.Seq, r)
			}
		}
	}
	if n := batchTestCount(t, pool, `SELECT count(*) FROM items`); n != 3 {
		t.Fatalf("%d rows after resending", n)
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
