package mutations_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/voltsync/volt/mutations"
)

func TestInsertUpdateDeleteAccepted(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos)
	r := e.one("c1", 1,
		ins("todos", row{"id": "a", "title": "one", "n": 7, "meta": row{"k": []any{1, "x"}}, "tags": []any{"x", `q"uote`, nil}}),
		ins("public.todos", row{"id": "b", "title": "two"}),
		upd("todos", row{"id": "a"}, row{"done": true, "n": nil}),
		del("todos", row{"id": "b"}))
	wantAccepted(t, r)
	xid8, err := strconv.ParseUint(r.Xid8, 10, 64)
	if err != nil || r.Txid == 0 || r.Txid != xid8&0xffffffff {
		t.Fatalf("txid %d must be the low 32 bits of xid8 %q", r.Txid, r.Xid8)
	}
	if lsn, err := strconv.ParseUint(r.LSN, 10, 64); err != nil || lsn == 0 {
		t.Fatalf("lsn %q", r.LSN)
	}
	var title string
	var done bool
	var n *int
	var meta, tags string
	err = e.pool.QueryRow(context.Background(), `SELECT title, done, n, meta::text, tags::text FROM todos WHERE id = 'a'`).Scan(&title, &done, &n, &meta, &tags)
	if err != nil || title != "one" || !done || n != nil || meta != `{"k": [1, "x"]}` || tags != `{x,"q\"uote",NULL}` {
		t.Fatalf("row a: %q %v %v %s %s %v", title, done, n, meta, tags, err)
	}
	if c := e.count(`SELECT count(*) FROM todos`); c != 1 {
		t.Fatalf("%d rows, want 1", c)
	}
	// The receipt carries the same transaction id, in the same transaction.
	if c := e.count(`SELECT count(*) FROM volt.receipts WHERE client_id = 'c1' AND seq = 1 AND status = 'accepted' AND txid = $1 AND xid8 = $2`, int64(r.Txid), r.Xid8); c != 1 {
		t.Fatalf("receipt missing")
	}
	// The row is written in that transaction (alone in its batch, the
	// client transaction needs no savepoint: its xmin is the txid; in a
	// batch of several, it is a subtransaction's xid, assigned after the
	// transaction's own; the shape stream carries the transaction's: e2e
	// TestMutationsReceiptAndTxid).
	if c := e.count(`SELECT count(*) FROM volt.receipts r JOIN todos t ON t.xmin::text::bigint >= r.txid WHERE t.id = 'a'`); c != 1 {
		t.Fatalf("the row was not written after the receipt's transaction began")
	}
	if c := e.count(`SELECT last_seq FROM volt.clients WHERE client_id = 'c1'`); c != 1 {
		t.Fatalf("last_seq = %d", c)
	}
}

func TestValuesCastByPostgres(t *testing.T) {
	e := newEnv(t, mutations.Options{},
		`CREATE TYPE mood AS ENUM ('sad', 'happy')`,
		`CREATE TABLE v (id bigint PRIMARY KEY, num numeric(10,2), ts timestamptz, m mood, j json, u uuid, big int8[], b bytea, s varchar(3))`)
	wantAccepted(t, e.one("c", 1, ins("v", row{
		"id": "9007199254740993", "num": 12.345, "ts": "2024-01-02T03:04:05Z", "m": "happy",
		"j": row{"a": 1}, "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "big": []any{1, 2, nil}, "b": `\x0102`, "s": "abc"})))
	wantAccepted(t, e.one("c", 2, ins("v", row{"id": 9007199254740994, "big": []any{[]any{1, 2}, []any{3, 4}}})))
	if c := e.count(`SELECT count(*) FROM v WHERE id = 9007199254740993 AND num = 12.35 AND m = 'happy' AND b = '\x0102' AND j::jsonb = '{"a":1}'`); c != 1 {
		t.Fatalf("values not stored as cast")
	}
	if c := e.count(`SELECT count(*) FROM v WHERE id = 9007199254740994 AND big = '{{1,2},{3,4}}'`); c != 1 {
		t.Fatalf("2-d array not stored")
	}
	wantRejected(t, e.one("c", 3, ins("v", row{"id": 3, "s": "abcd"})), "invalid") // too long: no silent truncation
	wantRejected(t, e.one("c", 4, ins("v", row{"id": 4, "m": "angry"})), "invalid")
	wantRejected(t, e.one("c", 5, ins("v", row{"id": "x"})), "invalid")
	wantRejected(t, e.one("c", 6, ins("v", row{"id": 6, "u": row{"not": "scalar"}})), "invalid")
}

// lsnProbe is an LSNResolver that records, at each call, how many of the
// client's transactions are committed.
type lsnProbe struct {
	pool            *pgxpool.Pool
	committedAtCall []int64
}

func (p *lsnProbe) CommitLSN(ctx context.Context, xid8 string) (uint64, error) {
	var last int64
	if err := p.pool.QueryRow(ctx, `SELECT last_seq FROM volt.clients WHERE client_id = 'batch'`).Scan(&last); err != nil {
		return 0, err
	}
	p.committedAtCall = append(p.committedAtCall, last)
	var lsn uint64
	err := p.pool.QueryRow(ctx, `SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8`).Scan(&lsn)
	return lsn, err
}

// The commit LSNs of a request's transactions are looked up, when the
// request asks for them, after all of them are committed: waiting for
// replication is paid once per request.
func TestCommitLSNsAfterAllCommits(t *testing.T) {
	probe := &lsnProbe{}
	// The probe's queries must not run into the request's bound on the
	// wait (50 ms by default: a loaded machine exceeded it, and the third
	// lookup was given up).
	e := newEnv(t, mutations.Options{LSN: probe, LSNWait: time.Minute}, todos)
	probe.pool = e.pool
	rs := e.postWait("batch",
		txn(1, ins("todos", row{"id": "a", "title": "one"})),
		txn(2, ins("todos", row{"id": "b", "title": "two"})),
		txn(3, ins("todos", row{"id": "c", "title": "three"})))
	var prev uint64
	for i, r := range rs {
		wantAccepted(t, r)
		lsn, err := strconv.ParseUint(r.LSN, 10, 64)
		if err != nil || lsn == 0 || lsn < prev { // upper bounds: equal after all commits
			t.Fatalf("transaction %d: lsn %q after %d", i+1, r.LSN, prev)
		}
		prev = lsn
	}
	if len(probe.committedAtCall) != 3 {
		t.Fatalf("%d LSN lookups, want 3", len(probe.committedAtCall))
	}
	for i, n := range probe.committedAtCall {
		if n != 3 {
			t.Fatalf("LSN lookup %d ran with %d of 3 transactions committed", i+1, n)
		}
	}
}
