package mutations_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// guarded is a schema whose secrets table counts every statement that
// reaches it: a BEFORE … FOR EACH STATEMENT trigger takes a number from a
// sequence, which a rollback does not give back.
var guarded = []string{
	todos,
	`CREATE TABLE secrets (id int PRIMARY KEY, email text UNIQUE, owner text)`,
	`INSERT INTO secrets VALUES (1, 'ceo@example.com', 'alice')`,
	`CREATE SEQUENCE reached`,
	`CREATE FUNCTION count_reach() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM nextval('reached'); RETURN NULL; END $$`,
	`CREATE TRIGGER reach BEFORE INSERT OR UPDATE OR DELETE ON secrets FOR EACH STATEMENT EXECUTE FUNCTION count_reach()`,
}

// reached returns how many statements ran on secrets.
func (e *env) reached() int {
	e.t.Helper()
	return e.count(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM reached`)
}

// TestAllowBeforeAnyStatement: a table the caller may not write is refused
// before any statement reaches it, with one answer whether the row exists,
// is missing or would violate a constraint; Postgres' catalogs are never
// reached, even with a Check that would decide after the write.
func TestAllowBeforeAnyStatement(t *testing.T) {
	var checked []string
	var mu sync.Mutex
	opts := mutations.Options{
		Allow: func(_ context.Context, _ any, m volt.Mutation) error {
			if m.Table != "todos" {
				return mutations.Reject(volt.CodeForbidden, "table %s is not writable", m.Table)
			}
			return nil
		},
		Check: func(_ context.Context, _ any, m volt.Mutation, _, _ map[string]any) error {
			mu.Lock()
			checked = append(checked, m.Table)
			mu.Unlock()
			return nil
		},
	}
	e := newEnv(t, opts, guarded...)
	existing := e.one("c", 1, upd("secrets", row{"id": 1}, row{"email": "x"}))
	missing := e.one("c", 2, upd("secrets", row{"id": 2}, row{"email": "x"}))
	taken := e.one("c", 3, ins("secrets", row{"id": 3, "email": "ceo@example.com"}))
	absent := e.one("c", 4, ins("no_such_table", row{"id": 3}))
	for _, r := range []volt.MutationResult{existing, missing, taken} {
		wantRejected(t, r, volt.CodeForbidden)
		if r.Message != existing.Message || r.Row != nil || r.Constraint != "" {
			t.Fatalf("answers differ: %+v vs %+v", r, existing)
		}
	}
	wantRejected(t, absent, volt.CodeForbidden)
	if n := e.reached(); n != 0 {
		t.Fatalf("%d statements reached a table without a rule", n)
	}

	// Catalogs: refused before anything runs, whatever the hooks say.
	e2 := newEnv(t, mutations.Options{Check: opts.Check}, todos)
	for i, m := range []volt.Mutation{
		upd("pg_catalog.pg_authid", row{"oid": 10}, row{"rolsuper": true}),
		del("information_schema.sql_features", row{"feature_id": "x"}),
		ins("pg_toast.x", row{"a": 1}),
		ins("volt.receipts", row{"client_id": "c", "seq": 99, "status": "accepted"}),
	} {
		r := e2.one("c", int64(i+1), m)
		wantRejected(t, r, volt.CodeForbidden)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(checked) != 0 {
		t.Fatalf("Check ran on %v: the statements were executed", checked)
	}
}

// TestCheckBeforeWrite: with a Check, an update or delete locks and checks
// the row before writing it. Someone else's row and a missing row get the
// same answer (the Check decides it for missing rows), no statement writes
// someone else's row (triggers do not fire), and a constraint violation
// cannot reveal it either.
func TestCheckBeforeWrite(t *testing.T) {
	hidden := func(m volt.Mutation) error {
		return mutations.Reject(volt.CodeForbidden, "%s of %s: no row you may write", m.Op, m.Table)
	}
	opts := mutations.Options{
		Authorize: func(_ context.Context, r *http.Request) (any, error) { return r.Header.Get("x-user"), nil },
		Check: func(_ context.Context, p any, m volt.Mutation, oldRow, newRow map[string]any) error {
			if oldRow == nil && newRow == nil {
				return hidden(m)
			}
			if oldRow != nil && oldRow["owner"] != p {
				return hidden(m)
			}
			if newRow != nil && newRow["owner"] != p {
				return mutations.Reject(volt.CodeForbidden, "the new row is not yours")
			}
			return nil
		},
	}
	e := newEnv(t, opts, append(guarded, `INSERT INTO secrets VALUES (2, 'bob@example.com', 'bob')`)...)
	post := func(user string, seq int64, m volt.Mutation) volt.MutationResult {
		t.Helper()
		body, _ := json.Marshal(volt.MutationRequest{ClientID: user, Transactions: []volt.ClientTransaction{txn(seq, m)}})
		status, b := e.postRaw(body, "x-user", user)
		var resp volt.MutationResponse
		if err := json.Unmarshal(b, &resp); status != http.StatusOK || err != nil || len(resp.Results) != 1 {
			t.Fatalf("%d %s", status, b)
		}
		return resp.Results[0]
	}
	before := e.reached()
	others := post("bob", 1, upd("secrets", row{"id": 1}, row{"email": "bob@example.com"})) // would violate email's key
	missing := post("bob", 2, upd("secrets", row{"id": 9}, row{"email": "bob@example.com"}))
	othersDel := post("bob", 3, del("secrets", row{"id": 1}))
	missingDel := post("bob", 4, del("secrets", row{"id": 9}))
	for _, r := range []volt.MutationResult{others, missing} {
		wantRejected(t, r, volt.CodeForbidden)
	}
	if others.Message != missing.Message || othersDel.Message != missingDel.Message || othersDel.Code != volt.CodeForbidden {
		t.Fatalf("someone else's row and a missing row answer differently: %+v / %+v, %+v / %+v", others, missing, othersDel, missingDel)
	}
	if n := e.reached() - before; n != 0 {
		t.Fatalf("%d statements wrote to rows bob may not write", n)
	}
	// Bob's own row is still his to change.
	wantAccepted(t, post("bob", 5, upd("secrets", row{"id": 2}, row{"email": "b@example.com"})))
	if n := e.count(`SELECT count(*) FROM secrets WHERE id = 1 AND email = 'ceo@example.com'`); n != 1 {
		t.Fatal("alice's row changed")
	}
}

// TestContentType: only application/json is accepted (a browser sends
// text/plain and forms cross-origin without a preflight).
func TestContentType(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos)
	body, _ := json.Marshal(volt.MutationRequest{ClientID: "c", Transactions: []volt.ClientTransaction{txn(1, ins("todos", row{"id": "a", "title": "t"}))}})
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonx"} {
		status, b := e.postRaw(body, "Content-Type", ct)
		var me volt.MutationError
		if err := json.Unmarshal(b, &me); status != http.StatusUnsupportedMediaType || err != nil || !strings.Contains(me.Message, "application/json") {
			t.Errorf("content type %q: %d %s", ct, status, b)
		}
	}
	if n := e.count(`SELECT (SELECT count(*) FROM todos) + (SELECT count(*) FROM volt.clients)`); n != 0 {
		t.Fatalf("refused requests left %d rows", n)
	}
	if status, b := e.postRaw(body, "Content-Type", "application/json; charset=utf-8"); status != http.StatusOK {
		t.Fatalf("JSON with a charset: %d %s", status, b)
	}
}

// TestRequestLimits: more transactions or mutations than the caps is a 413
// naming the limit, and nothing runs.
func TestRequestLimits(t *testing.T) {
	e := newEnv(t, mutations.Options{MaxTransactions: 3, MaxMutations: 5}, todos)
	many := func(txs, per int) []byte {
		req := volt.MutationRequest{ClientID: "c"}
		for s := 1; s <= txs; s++ {
			var ms []volt.Mutation
			for i := 0; i < per; i++ {
				ms = append(ms, ins("todos", row{"id": fmt.Sprint(s, "-", i), "title": "t"}))
			}
			req.Transactions = append(req.Transactions, txn(int64(s), ms...))
		}
		b, _ := json.Marshal(req)
		return b
	}
	for _, c := range []struct {
		body []byte
		want string
	}{{many(4, 1), "at most 3"}, {many(2, 3), "at most 5"}} {
		status, b := e.postRaw(c.body)
		var me volt.MutationError
		_ = json.Unmarshal(b, &me)
		if status != http.StatusRequestEntityTooLarge || len(me.Errors["transactions"]) == 0 || !strings.Contains(me.Errors["transactions"][0], c.want) {
			t.Fatalf("%d %s, want 413 with %q", status, b, c.want)
		}
	}
	if n := e.count(`SELECT (SELECT count(*) FROM todos) + (SELECT count(*) FROM volt.clients)`); n != 0 {
		t.Fatalf("refused requests left %d rows", n)
	}
	if rs := e.post("c", txn(1, ins("todos", row{"id": "a", "title": "t"})), txn(2), txn(3)); rs[0].Status != volt.StatusAccepted {
		t.Fatalf("within the limits: %+v", rs)
	}
}

// block registers a named mutation "block" that reports when it runs and
// waits for release.
func block(e *env) (started chan string, release chan struct{}) {
	started, release = make(chan string, 10), make(chan struct{})
	e.h.Register("block", func(ctx context.Context, _ pgx.Tx, args json.RawMessage) error {
		started <- string(args)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return started, release
}

// TestClientBusy: while a request of a client is applied, another request
// of the same client waits up to ClientWait and is then a 429; other
// clients are not held up.
func TestClientBusy(t *testing.T) {
	e := newEnv(t, mutations.Options{ClientWait: 200 * time.Millisecond}, todos)
	started, release := block(e)
	done := make(chan []volt.MutationResult)
	go func() { done <- e.post("c", txn(1, named("block", `"c"`))) }()
	<-started
	body, _ := json.Marshal(volt.MutationRequest{ClientID: "c", Transactions: []volt.ClientTransaction{txn(1, named("block", `"c again"`))}})
	status, b := e.postRaw(body)
	var me volt.MutationError
	if err := json.Unmarshal(b, &me); status != http.StatusTooManyRequests || err != nil || me.Code != "client_busy" {
		t.Fatalf("second request of a busy client: %d %s", status, b)
	}
	wantAccepted(t, e.one("other", 1, ins("todos", row{"id": "o", "title": "t"})))
	close(release)
	wantAccepted(t, (<-done)[0])
	// Once answered, the client is free again.
	wantAccepted(t, e.one("c", 2, ins("todos", row{"id": "c2", "title": "t"})))
}

// onePoolEnv is an env whose handler writes through a pool of one
// connection.
func onePoolEnv(t *testing.T, opts mutations.Options, schema ...string) *env {
	t.Helper()
	e := newEnv(t, mutations.Options{}, schema...)
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.h = mutations.New(pool, opts)
	e.srv.Config.Handler = e.h
	return e
}

// waitForQueued waits until n goroutines wait for their transactions to be
// applied.
func waitForQueued(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if strings.Count(string(buf[:runtime.Stack(buf, true)]), "mutations.(*Handler).submit(") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d requests wait", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLongRequestYieldsBetweenChunks: a request applies its transactions
// in chunks, one batch each, so on a one-connection pool another client's
// write that arrives during a chunk goes in before the next chunk (in the
// same batch), not after the whole request.
func TestLongRequestYieldsBetweenChunks(t *testing.T) {
	e := onePoolEnv(t, mutations.Options{MaxTransactions: 1000}, todos)
	started, release := block(e)
	long := []volt.ClientTransaction{txn(1, named("block", `"long-1"`))}
	for i := 2; i <= 150; i++ {
		long = append(long, txn(int64(i), ins("todos", row{"id": fmt.Sprint("l", i), "title": "t"})))
	}
	long = append(long, txn(151, named("block", `"long-2"`)))
	done := make(chan []volt.MutationResult)
	go func() { done <- e.post("long", long...) }()
	if got := <-started; got != `"long-1"` {
		t.Fatalf("started %s", got)
	}
	other := make(chan []volt.MutationResult)
	go func() { other <- e.post("other", txn(1, named("block", `"other"`))) }()
	waitForQueued(t, 2)
	release <- struct{}{} // long's first chunk commits
	if got := <-started; got != `"other"` {
		t.Fatalf("after long's first chunk, %s ran: the long request kept its connection", got)
	}
	close(release)
	for _, rs := range [][]volt.MutationResult{<-other, <-done} {
		for _, r := range rs {
			wantAccepted(t, r)
		}
	}
}

// TestLSNWaitHoldsNoConnection: while a request waits for its commit LSN,
// another client's write on a one-connection pool completes.
func TestLSNWaitHoldsNoConnection(t *testing.T) {
	lsn := &blockingLSN{waiting: make(chan struct{}), release: make(chan struct{})}
	e := onePoolEnv(t, mutations.Options{LSN: lsn}, todos)
	done := make(chan volt.MutationResult)
	go func() { done <- e.postWait("long", txn(1, ins("todos", row{"id": "a", "title": "t"})))[0] }()
	<-lsn.waiting
	other := make(chan volt.MutationResult)
	go func() { other <- e.one("other", 1, ins("todos", row{"id": "b", "title": "t"})) }()
	select {
	case r := <-other:
		wantAccepted(t, r)
		if r.LSN == "" {
			t.Fatalf("no upper bound LSN: %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a write waited for another request's LSN wait")
	}
	close(lsn.release)
	if r := <-done; r.Status != volt.StatusAccepted || r.LSN == "" {
		t.Fatalf("%+v", r)
	}
}

// blockingLSN is an LSNResolver whose first call reports itself and waits
// for release; it resolves nothing.
type blockingLSN struct {
	calls   atomic.Int32
	waiting chan struct{}
	release chan struct{}
}

func (b *blockingLSN) CommitLSN(ctx context.Context, _ string) (uint64, error) {
	if b.calls.Add(1) == 1 {
		b.waiting <- struct{}{}
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	}
	return 0, nil
}

// TestRequestRefusedAsAWhole: Authorize's ErrForbidden and ClientAllowed
// answer 403, record nothing and reveal nothing; the same seq applies once
// allowed.
func TestRequestRefusedAsAWhole(t *testing.T) {
	var rulesLoaded bool
	opts := mutations.Options{
		Authorize: func(_ context.Context, r *http.Request) (any, error) {
			if !rulesLoaded {
				return nil, fmt.Errorf("%w: no write rules are configured", mutations.ErrForbidden)
			}
			return r.Header.Get("x-user"), nil
		},
		ClientAllowed: func(_ context.Context, p any, clientID string) error {
			if !strings.HasPrefix(clientID, p.(string)+":") {
				return errors.New("client_id is not yours")
			}
			return nil
		},
	}
	e := newEnv(t, opts, todos)
	body := func(client string, id string) []byte {
		b, _ := json.Marshal(volt.MutationRequest{ClientID: client, Transactions: []volt.ClientTransaction{txn(1, ins("todos", row{"id": id, "title": "t"}))}})
		return b
	}
	status, b := e.postRaw(body("alice:1", "a"), "x-user", "alice")
	if status != http.StatusForbidden || !strings.Contains(string(b), "no write rules") {
		t.Fatalf("without rules: %d %s", status, b)
	}
	if n := e.count(`SELECT (SELECT count(*) FROM todos) + (SELECT count(*) FROM volt.receipts) + (SELECT count(*) FROM volt.clients)`); n != 0 {
		t.Fatalf("a refused request left %d rows", n)
	}
	rulesLoaded = true
	status, b = e.postRaw(body("alice:1", "a"), "x-user", "alice")
	if status != http.StatusOK || !strings.Contains(string(b), `"accepted"`) || strings.Contains(string(b), "replayed") {
		t.Fatalf("seq 1 once rules are loaded: %d %s", status, b)
	}
	// Mallory resends alice's seq 1: no replay, no receipt, nothing.
	status, b = e.postRaw(body("alice:1", "m"), "x-user", "mallory")
	if status != http.StatusForbidden || strings.Contains(string(b), "txid") || strings.Contains(string(b), "accepted") {
		t.Fatalf("someone else's client id: %d %s", status, b)
	}
	if n := e.count(`SELECT count(*) FROM todos WHERE id = 'm'`); n != 0 {
		t.Fatal("mallory's write was applied")
	}
}

// TestSchemaNotReady: when volt's own tables are missing, a write is
// answered retry and records nothing; once they are back, the same seq
// applies.
func TestSchemaNotReady(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos)
	e.exec(`DROP SCHEMA volt CASCADE`)
	r := e.one("c", 1, ins("todos", row{"id": "a", "title": "t"}))
	if r.Status != volt.StatusRetry {
		t.Fatalf("without schema volt: %+v", r)
	}
	if err := mutations.Migrate(context.Background(), e.pool); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT (SELECT count(*) FROM todos) + (SELECT count(*) FROM volt.receipts)`); n != 0 {
		t.Fatalf("%d rows after a retry", n)
	}
	r = e.one("c", 1, ins("todos", row{"id": "a", "title": "t"}))
	if r.Status != volt.StatusAccepted || r.Replayed {
		t.Fatalf("seq 1 once the schema is back: %+v", r)
	}
}

// TestDurableWhenAccepted: where synchronous_commit is off, a client
// transaction commits with local durability: the client forgets an
// accepted write, so it must survive a crash; and its commit reaches
// replication without waiting for wal_writer_delay.
func TestDurableWhenAccepted(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos,
		`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$`)
	setting := make(chan string, 1)
	e.h.Register("setting", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		var s string
		err := tx.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&s)
		setting <- s
		return err
	})
	// A fresh pool: the database setting applies to new sessions.
	e.pool.Reset()
	wantAccepted(t, e.one("c", 1, named("setting", `{}`)))
	if s := <-setting; s != "local" {
		t.Fatalf("synchronous_commit = %s in a client transaction", s)
	}
}
