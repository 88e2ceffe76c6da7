package mutations_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// countingLSN is an LSNResolver that counts its calls and resolves each
// xid8 to lsnOf(xid8).
type countingLSN struct {
	calls atomic.Int32
	mu    sync.Mutex
	xid8s []string
}

func lsnOf(xid8 string) uint64 {
	x, _ := strconv.ParseUint(xid8, 10, 64)
	return 1<<40 + x
}

func (c *countingLSN) CommitLSN(_ context.Context, xid8 string) (uint64, error) {
	c.calls.Add(1)
	c.mu.Lock()
	c.xid8s = append(c.xid8s, xid8)
	c.mu.Unlock()
	return lsnOf(xid8), nil
}

// walPosition reads the WAL insert position.
func (e *env) walPosition() uint64 {
	e.t.Helper()
	var lsn uint64
	if err := e.pool.QueryRow(context.Background(), `SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8`).Scan(&lsn); err != nil {
		e.t.Fatal(err)
	}
	return lsn
}

// TestAnswerDoesNotWaitForLSN: by default an accepted transaction is
// answered with its txid and xid8 and an upper bound of its commit LSN
// read right after its COMMIT; the resolver (replication) is not asked.
func TestAnswerDoesNotWaitForLSN(t *testing.T) {
	probe := &countingLSN{}
	e := newEnv(t, mutations.Options{LSN: probe, LSNWait: time.Minute}, todos)
	wantAccepted(t, e.one("c", 1, ins("todos", row{"id": "w", "title": "warm-up"})))
	before := e.walPosition()
	rs := e.post("c", txn(2, ins("todos", row{"id": "a", "title": "one"})), txn(3, upd("todos", row{"id": "a"}, row{"done": true})))
	after := e.walPosition()
	var prev uint64
	for _, r := range rs {
		wantAccepted(t, r)
		xid8, err := strconv.ParseUint(r.Xid8, 10, 64)
		if err != nil || r.Txid == 0 || r.Txid != xid8&0xffffffff {
			t.Fatalf("txid %d, xid8 %q", r.Txid, r.Xid8)
		}
		lsn, err := strconv.ParseUint(r.LSN, 10, 64)
		if err != nil || lsn <= before || lsn > after || lsn < prev {
			t.Fatalf("seq %d: lsn %q, want an upper bound read after its commit, in (%d, %d]", r.Seq, r.LSN, before, after)
		}
		prev = lsn
	}
	if n := probe.calls.Load(); n != 0 {
		t.Fatalf("the answer asked replication for %d commit LSNs; it must not wait by default", n)
	}
}

// TestWaitLSNAnswersResolvedLSN: "wait": "lsn" answers each accepted
// transaction with the commit LSN the resolver reports for its xid8, and
// replays with none.
func TestWaitLSNAnswersResolvedLSN(t *testing.T) {
	probe := &countingLSN{}
	e := newEnv(t, mutations.Options{LSN: probe}, todos)
	rs := e.postWait("c", txn(1, ins("todos", row{"id": "a", "title": "one"})), txn(2, del("todos", row{"id": "missing"})), txn(3, ins("todos", row{"id": "b", "title": "two"})))
	wantAccepted(t, rs[0])
	wantRejected(t, rs[1], volt.CodeConflict)
	wantAccepted(t, rs[2])
	for _, r := range []volt.MutationResult{rs[0], rs[2]} {
		if r.LSN != strconv.FormatUint(lsnOf(r.Xid8), 10) {
			t.Fatalf("seq %d: lsn %q, want the resolver's %d", r.Seq, r.LSN, lsnOf(r.Xid8))
		}
	}
	if rs[1].LSN != "" {
		t.Fatalf("rejection with lsn: %+v", rs[1])
	}
	if len(probe.xid8s) != 2 || probe.xid8s[0] != rs[0].Xid8 || probe.xid8s[1] != rs[2].Xid8 {
		t.Fatalf("resolver asked for %v", probe.xid8s)
	}
	replay := e.postWait("c", txn(1, ins("todos", row{"id": "a", "title": "one"})))[0]
	if !replay.Replayed || replay.LSN != "" || replay.Xid8 != rs[0].Xid8 || probe.calls.Load() != 2 {
		t.Fatalf("replay %+v after %d lookups", replay, probe.calls.Load())
	}
}

// TestUnknownWaitRefused: any other wait is a 400 naming the field, and
// nothing is applied or recorded.
func TestUnknownWaitRefused(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos)
	for _, body := range []string{
		`{"client_id": "c", "wait": "commit", "transactions": [{"seq": 1, "mutations": [{"op": "insert", "table": "todos", "values": {"id": "a", "title": "t"}}]}]}`,
		`{"client_id": "c", "wait": 1, "transactions": [{"seq": 1, "mutations": [{"op": "insert", "table": "todos", "values": {"id": "a", "title": "t"}}]}]}`,
		`{"client_id": "c", "Wait": "lsn", "transactions": [{"seq": 1, "mutations": [{"op": "insert", "table": "todos", "values": {"id": "a", "title": "t"}}]}]}`,
	} {
		status, b := e.postRaw([]byte(body))
		var me volt.MutationError
		if status != http.StatusBadRequest || json.Unmarshal(b, &me) != nil || me.Message == "" {
			t.Fatalf("%s: %d %s", body, status, b)
		}
		if me.Errors["wait"] == nil && me.Errors["body"] == nil {
			t.Fatalf("%s: the error names neither wait nor the body: %s", body, b)
		}
	}
	if n := e.count(`SELECT count(*) FROM todos`) + e.count(`SELECT count(*) FROM volt.receipts`) + e.count(`SELECT count(*) FROM volt.clients`); n != 0 {
		t.Fatalf("%d rows written by refused requests", n)
	}
}

// roundTrips counts what a pool sends: single statements and batches.
type roundTrips struct{ queries, batches atomic.Int32 }

func (c *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}
func (c *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}
func (c *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (c *roundTrips) reset() { c.queries.Store(0); c.batches.Store(0) }

// poolEnv is newEnv with the handler on a pool of its own, configured by
// edit.
func poolEnv(t *testing.T, opts mutations.Options, edit func(*pgxpool.Config), schema ...string) *env {
	t.Helper()
	e := newEnv(t, mutations.Options{}, schema...)
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.h = mutations.New(pool, opts)
	e.srv.Config.Handler = e.h
	return e
}

// tracedEnv is newEnv with the handler's pool counting its round trips.
func tracedEnv(t *testing.T, opts mutations.Options, schema ...string) (*env, *roundTrips) {
	t.Helper()
	rt := &roundTrips{}
	return poolEnv(t, opts, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = rt }, schema...), rt
}

// TestOneRoundTripPerTransaction: BEGIN, the claim of the seq, the row
// mutations, the receipt and COMMIT of a client transaction go to
// Postgres as one batch (once the catalog is cached), and so do those of several client
// transactions of a request, each in its savepoint; rejections and checks
// add theirs.
func TestOneRoundTripPerTransaction(t *testing.T) {
	e, rt := tracedEnv(t, mutations.Options{},
		todos, `CREATE TABLE lists (id text PRIMARY KEY)`, `CREATE TABLE items (id text PRIMARY KEY, list text NOT NULL REFERENCES lists)`)
	// Warm-up: the client's row, the catalog and the statement cache.
	wantAccepted(t, e.one("c", 1, ins("todos", row{"id": "w", "title": "t"}), ins("lists", row{"id": "w"}), ins("items", row{"id": "w", "list": "w"})))
	rt.reset()
	wantAccepted(t, e.one("c", 2, ins("todos", row{"id": "a", "title": "one"})))
	if q, b := rt.queries.Load(), rt.batches.Load(); q != 0 || b != 1 {
		t.Fatalf("one single-insert transaction: %d statements and %d batches, want 0 and 1", q, b)
	}
	rt.reset()
	rs := e.post("c",
		txn(3, upd("todos", row{"id": "a"}, row{"done": true}), ins("todos", row{"id": "b", "title": "two"})),
		txn(4, ins("items", row{"id": "i", "list": "l"}), ins("lists", row{"id": "l"})), // FK order: parent first
		txn(5, del("todos", row{"id": "b"})))
	for _, r := range rs {
		wantAccepted(t, r)
	}
	if q, b := rt.queries.Load(), rt.batches.Load(); q != 0 || b != 1 {
		t.Fatalf("three transactions: %d statements and %d batches, want 0 and 1", q, b)
	}
	if e.count(`SELECT count(*) FROM todos WHERE id = 'a' AND done`) != 1 || e.count(`SELECT count(*) FROM todos WHERE id = 'b'`) != 0 || e.count(`SELECT count(*) FROM items WHERE id = 'i'`) != 1 {
		t.Fatal("rows not written")
	}
	// A missing row fails its statement: nothing after it runs, the
	// transaction is rejected alone and its receipt is recorded.
	rs = e.post("c",
		txn(6, ins("todos", row{"id": "c", "title": "three"}), upd("todos", row{"id": "gone"}, row{"done": true}), ins("todos", row{"id": "d", "title": "four"})),
		txn(7, ins("todos", row{"id": "e", "title": "five"})))
	wantRejected(t, rs[0], volt.CodeConflict)
	wantAccepted(t, rs[1])
	if e.count(`SELECT count(*) FROM todos WHERE id IN ('c', 'd')`) != 0 || e.count(`SELECT count(*) FROM volt.receipts WHERE client_id = 'c' AND seq = 6 AND code = 'conflict'`) != 1 {
		t.Fatal("the rejected transaction left rows or no receipt")
	}
	if c := e.count(`SELECT last_seq FROM volt.clients WHERE client_id = 'c'`); c != 7 {
		t.Fatalf("last_seq %d", c)
	}
}

// TestPipelinedSeqCheck: the claim that starts the batch tells a replay,
// out_of_order and a new client apart (with the receipts read after it
// failed), and a replay applies nothing (the mutations after the claim do
// not run).
func TestPipelinedSeqCheck(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos, `CREATE TABLE hits (n int)`,
		`CREATE FUNCTION hit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO hits VALUES (1); RETURN NEW; END $$`,
		`CREATE TRIGGER hit BEFORE INSERT ON todos FOR EACH ROW EXECUTE FUNCTION hit()`)
	first := e.one("new", 1, ins("todos", row{"id": "a", "title": "t"}))
	wantAccepted(t, first)
	replay := e.one("new", 1, ins("todos", row{"id": "a", "title": "t"}))
	if !replay.Replayed || replay.Status != volt.StatusAccepted || replay.Txid != first.Txid {
		t.Fatalf("replay %+v of %+v", replay, first)
	}
	if r := e.one("new", 5, ins("todos", row{"id": "b", "title": "t"})); r.Code != volt.CodeOutOfOrder || r.ExpectedSeq != 2 {
		t.Fatalf("seq 5: %+v", r)
	}
	if r := e.one("other", 2, ins("todos", row{"id": "c", "title": "t"})); r.Code != volt.CodeOutOfOrder || r.ExpectedSeq != 1 {
		t.Fatalf("seq 2 of a new client: %+v", r)
	}
	if n := e.count(`SELECT count(*) FROM hits`); n != 1 {
		t.Fatalf("the insert trigger ran %d times, want once", n)
	}
	if n := e.count(`SELECT count(*) FROM volt.receipts`); n != 1 {
		t.Fatalf("%d receipts", n)
	}
}

// TestCheckedInsertCommitsAfterCheck: with a Check, an inserted row is
// checked before COMMIT; a refused one rolls its transaction back alone.
func TestCheckedInsertCommitsAfterCheck(t *testing.T) {
	check := func(_ context.Context, _ any, m volt.Mutation, _, newRow map[string]any) error {
		if newRow != nil && newRow["title"] == "secret" {
			return mutations.Reject(volt.CodeForbidden, "no")
		}
		return nil
	}
	e, rt := tracedEnv(t, mutations.Options{Check: check, Allow: func(context.Context, any, volt.Mutation) error { return nil }}, todos)
	wantAccepted(t, e.one("c", 1, ins("todos", row{"id": "w", "title": "t"})))
	rs := e.post("c",
		txn(2, ins("todos", row{"id": "a", "title": "ok"}), ins("todos", row{"id": "b", "title": "secret"})),
		txn(3, ins("todos", row{"id": "c", "title": "ok"})))
	wantRejected(t, rs[0], volt.CodeForbidden)
	wantAccepted(t, rs[1])
	if e.count(`SELECT count(*) FROM todos WHERE id IN ('a', 'b')`) != 0 || e.count(`SELECT count(*) FROM todos WHERE id = 'c'`) != 1 {
		t.Fatal("rows of the refused transaction were kept")
	}
	// The rows and the receipt in one round trip, COMMIT in a second one
	// once the Check passed.
	rt.reset()
	wantAccepted(t, e.one("c", 4, ins("todos", row{"id": "d", "title": "ok"}), ins("todos", row{"id": "e", "title": "ok"})))
	if q, b := rt.queries.Load(), rt.batches.Load(); q != 0 || b != 2 {
		t.Fatalf("%d statements and %d batches, want 0 and 2", q, b)
	}
}

// TestTerminatedConnectionsExactlyOnce kills the write connections'
// backends that are in a transaction (mid-batch, or between the batches
// around a named mutation) over and over while a client sends transactions, each resent
// with its seq until it is decided: every seq is applied exactly once, and
// every accepted seq is in the database.
func TestTerminatedConnectionsExactlyOnce(t *testing.T) {
	e := poolEnv(t, mutations.Options{}, func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["application_name"] = "volt-writes-killed" },
		`CREATE TABLE items (id int PRIMARY KEY)`, `CREATE TABLE counter (n int NOT NULL)`, `INSERT INTO counter VALUES (0)`)
	e.h.Register("bump", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		_, err := tx.Exec(ctx, `UPDATE counter SET n = n + 1`)
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	killer := make(chan int)
	go func() {
		kills := 0
		defer func() { killer <- kills }()
		for ctx.Err() == nil {
			var n int
			_ = e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = 'volt-writes-killed' AND state <> 'idle'`).Scan(&n)
			kills += n
			time.Sleep(time.Duration(20+kills%20) * time.Millisecond)
		}
	}()
	const seqs = 60
	retries := 0
	for seq := 1; seq <= seqs; seq++ {
		for {
			body, _ := json.Marshal(volt.MutationRequest{ClientID: "c", Transactions: []volt.ClientTransaction{
				txn(int64(seq), ins("items", row{"id": seq}), named("bump", `{}`)),
				txn(int64(seq)+seqs, ins("items", row{"id": -seq})), // out of order: never applied
			}})
			status, b := e.postRaw(body)
			var resp volt.MutationResponse
			if status != http.StatusOK || json.Unmarshal(b, &resp) != nil || len(resp.Results) != 2 {
				t.Fatalf("seq %d: %d %s", seq, status, b)
			}
			r := resp.Results[0]
			if r.Status == volt.StatusAccepted {
				if n := e.count(`SELECT count(*) FROM items WHERE id = $1`, seq); n != 1 {
					t.Fatalf("seq %d accepted (%+v) but not in the database", seq, r)
				}
				break
			}
			if r.Status != volt.StatusRetry {
				t.Fatalf("seq %d: %+v", seq, r)
			}
			retries++
		}
	}
	cancel()
	kills := <-killer
	if kills == 0 || retries == 0 {
		t.Fatalf("%d backends killed, %d retries: the test did not interrupt transactions", kills, retries)
	}
	if n := e.count(`SELECT n FROM counter`); n != seqs {
		t.Fatalf("counter %d after %d transactions: not exactly once", n, seqs)
	}
	if n := e.count(`SELECT count(*) FROM items`); n != seqs {
		t.Fatalf("%d items", n)
	}
	if n := e.count(`SELECT count(*) FROM volt.receipts WHERE client_id = 'c'`); n != seqs {
		t.Fatalf("%d receipts", n)
	}
	t.Logf("%d backends killed, %d retry answers", kills, retries)
}
