package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/internal/pgtest"
)

const todosDDL = `CREATE TABLE todos (id uuid PRIMARY KEY, title text UNIQUE, done bool NOT NULL DEFAULT false)`

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func insertTodo(id, title string) []volt.Mutation {
	return []volt.Mutation{{Op: volt.OpInsert, Table: "todos", Values: map[string]any{"id": id, "title": title, "done": false}}}
}

func newWriter(t *testing.T, c *client.Client, clientID string, opts ...client.WriterOption) *client.Writer {
	w, err := c.Writer(clientID, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// todosInPostgres returns id → title of the todos table.
func todosInPostgres(t *testing.T, dbURL string) map[string]string {
	conn := connect(t, dbURL)
	rows, err := conn.Query(ctxT(t), `SELECT id::text, title FROM todos`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, title string
		if err := rows.Scan(&id, &title); err != nil {
			t.Fatal(err)
		}
		out[id] = title
	}
	return out
}

func todosIn(rows []client.Row) map[string]string {
	out := map[string]string{}
	for _, r := range rows {
		out[r["id"].(string)] = r["title"].(string)
	}
	return out
}

func TestIntegrationWriterLostResponse(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	v := startVolt(t, dbURL)
	ctx := ctxT(t)

	// The first two requests reach volt, then their answers are lost.
	var n atomic.Int32
	lossy := roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && n.Add(1) <= 2 {
			resp.Body.Close()
			return nil, errors.New("connection reset after the request was sent")
		}
		return resp, err
	})
	w := newWriter(t, newClient(t, v.URL, client.WithHTTPClient(&http.Client{Transport: lossy})), "lossy")
	id := newUUID()
	res, err := w.Write(ctx, insertTodo(id, "once"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != volt.StatusAccepted || !res.Replayed || res.Seq != 1 {
		t.Fatalf("result %+v", res)
	}
	if got := todosInPostgres(t, dbURL); len(got) != 1 || got[id] != "once" {
		t.Fatalf("todos %v", got)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestIntegrationWriteAndAwait(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	v := startVolt(t, dbURL)
	ctx := ctxT(t)

	c := newClient(t, v.URL)
	todos := newShape(t, c, client.ShapeDef{Table: "todos"})
	open := newShape(t, c, client.ShapeDef{Table: "todos", Where: "done = true"})
	receipts, err := c.ReceiptShape("online")
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range []*client.Shape{todos, open, receipts} {
		runShape(t, sh)
		if err := sh.WaitUpToDate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w := newWriter(t, c, "online")
	id := newUUID()
	res, err := w.WriteAndAwait(ctx, insertTodo(id, "buy milk"), todos)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := todos.Get(`"public"."todos"/"` + id + `"`); !ok || res.Txid == 0 {
		t.Fatalf("row not in the shape when WriteAndAwait returned (%+v)", res)
	}
	// A write outside the filtered shape resolves through the receipt.
	start := time.Now()
	if _, err := w.WriteAndAwait(ctx, insertTodo(newUUID(), "not done"), todos, open, receipts); err != nil {
		t.Fatal(err)
	}
	t.Logf("write outside a shape confirmed in %v", time.Since(start))
	// A rejection.
	_, err = w.WriteAndAwait(ctx, insertTodo(newUUID(), "buy milk"), todos)
	var rej *client.RejectedError
	if !errors.As(err, &rej) || rej.Result.Code != volt.CodeConstraint {
		t.Fatalf("err %v", err)
	}
}

// optimisticTodos sets up a todos shape, a receipts shape and an
// Optimistic for clientID.
func optimisticTodos(t *testing.T, url, clientID string, copts ...client.Option) (*client.Optimistic, *client.Shape) {
	ctx := ctxT(t)
	c := newClient(t, url, copts...)
	todos := newShape(t, c, client.ShapeDef{Table: "todos"})
	receipts, err := c.ReceiptShape(clientID)
	if err != nil {
		t.Fatal(err)
	}
	o, err := client.NewOptimistic(client.OptimisticOptions{Writer: newWriter(t, c, clientID), Shapes: []*client.Shape{todos}, Receipts: receipts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	for _, sh := range []*client.Shape{todos, receipts} {
		runShape(t, sh)
		if err := sh.WaitUpToDate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return o, todos
}

// waitFor waits until cond holds, re-checking it on every change of o.
func waitFor(t *testing.T, o *client.Optimistic, what string, cond func() bool) {
	t.Helper()
	changed := make(chan struct{}, 1)
	unsub := o.Subscribe(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer unsub()
	timeout := time.After(60 * time.Second)
	for !cond() {
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestIntegrationOptimisticRejection(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	v := startVolt(t, dbURL)
	ctx := ctxT(t)
	o, todos := optimisticTodos(t, v.URL, "opt-reject")
	rollbacks := make(chan volt.MutationResult, 1)
	o.OnRollback(func(_ int64, res volt.MutationResult) { rollbacks <- res })

	first, second := newUUID(), newUUID()
	if res, err := o.Apply(ctx, insertTodo(first, "same title")); err != nil || res.Status != volt.StatusAccepted {
		t.Fatalf("%+v %v", res, err)
	}
	res, err := o.Apply(ctx, insertTodo(second, "same title"))
	var rej *client.RejectedError
	if !errors.As(err, &rej) || res.Code != volt.CodeConstraint || rej.Result.Seq != res.Seq {
		t.Fatalf("%+v %v", res, err)
	}
	if rb := <-rollbacks; rb.Code != volt.CodeConstraint || rb.Constraint == "" {
		t.Fatalf("rollback %+v", rb)
	}
	waitFor(t, o, "the first insert's echo", func() bool { return o.Pending() == 0 })
	got := todosIn(o.Rows(todos))
	if len(got) != 1 || got[first] != "same title" {
		t.Fatalf("rows %v", got)
	}
}

func TestIntegrationOptimisticConcurrentWriters(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	v := startVolt(t, dbURL)
	ctx := ctxT(t)
	a, todosA := optimisticTodos(t, v.URL, "writer-a")
	b, todosB := optimisticTodos(t, v.URL, "writer-b")
	ids := []string{newUUID(), newUUID(), newUUID()}
	for i, id := range ids {
		if _, err := a.Apply(ctx, insertTodo(id, fmt.Sprint("t", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, b, "b sees a's rows", func() bool { return len(b.Rows(todosB)) == 3 })
	var wg sync.WaitGroup
	for _, o := range []*client.Optimistic{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				id := ids[i%len(ids)]
				_, err := o.Apply(ctx, []volt.Mutation{{Op: volt.OpUpdate, Table: "todos", Key: map[string]any{"id": id},
					Values: map[string]any{"title": fmt.Sprintf("%p-%d-%s", o, i, id[:4])}}})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := todosInPostgres(t, dbURL)
	for _, c := range []struct {
		o  *client.Optimistic
		sh *client.Shape
	}{{a, todosA}, {b, todosB}} {
		waitFor(t, c.o, "convergence", func() bool {
			got := todosIn(c.o.Rows(c.sh))
			if c.o.Pending() > 0 || len(got) != len(want) {
				return false
			}
			for id, title := range want {
				if got[id] != title {
					return false
				}
			}
			return true
		})
	}
}

// TestIntegrationOptimisticRestartAndRefetch writes while volt is down, and
// holds the answer of a write while its shape is deleted (must-refetch):
// the local row stays visible throughout, and goes when confirmed.
func TestIntegrationOptimisticRestartAndRefetch(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	v := startVolt(t, dbURL)
	ctx := ctxT(t)
	var hold atomic.Pointer[chan struct{}]
	slow := roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if p := hold.Load(); p != nil && r.Method == http.MethodPost {
			<-*p
		}
		return resp, err
	})
	o, todos := optimisticTodos(t, v.URL, "opt-restart", client.WithHTTPClient(&http.Client{Transport: slow}))

	// Every state the Optimistic shows: the watched rows must stay visible.
	var mu sync.Mutex
	watch := map[string]bool{}
	var missing []string
	o.Subscribe(func() {
		mu.Lock()
		defer mu.Unlock()
		rows := todosIn(o.Rows(todos))
		for id := range watch {
			if _, ok := rows[id]; !ok {
				missing = append(missing, id)
			}
		}
	})
	show := func(id string) {
		mu.Lock()
		watch[id] = true
		mu.Unlock()
	}

	// Restart: the write is shown at once and sent when volt is back.
	v.stop()
	id1 := newUUID()
	done := make(chan error, 1)
	go func() {
		_, err := o.Apply(ctx, insertTodo(id1, "while down"))
		done <- err
	}()
	waitFor(t, o, "the local row", func() bool { _, ok := todosIn(o.Rows(todos))[id1]; return ok })
	show(id1)
	v.start()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Must-refetch while a write's answer is held.
	ch := make(chan struct{})
	hold.Store(&ch)
	id2 := newUUID()
	go func() {
		_, err := o.Apply(ctx, insertTodo(id2, "during refetch"))
		done <- err
	}()
	waitFor(t, o, "the second local row", func() bool { _, ok := todosIn(o.Rows(todos))[id2]; return ok })
	show(id2)
	refetched := make(chan struct{}, 1)
	unsub := todos.Subscribe(func(sc client.ShapeChange) {
		if sc.MustRefetch {
			select {
			case refetched <- struct{}{}:
			default:
			}
		}
	})
	req, _ := http.NewRequest(http.MethodDelete, v.URL+"/v1/shape?handle="+todos.Stream().Handle(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-refetched:
	case <-ctx.Done():
		t.Fatal("no must-refetch")
	}
	unsub()
	hold.Store(nil)
	close(ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, o, "confirmation", func() bool { return o.Pending() == 0 && todos.UpToDate() })
	want := todosInPostgres(t, dbURL)
	if got := todosIn(o.Rows(todos)); len(got) != 2 || got[id1] != want[id1] || got[id2] != want[id2] {
		t.Fatalf("rows %v, Postgres %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(missing) > 0 {
		t.Fatalf("local rows vanished in some state: %v", missing)
	}
}

// TestIntegrationCancelLeaksNoGoroutine cancels shapes, a pending
// WriteAndAwait and an Apply against a stopped volt, and counts
// goroutines.
func TestIntegrationCancelLeaksNoGoroutine(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	v := startVolt(t, dbURL)
	tr := &http.Transport{}
	hc := &http.Client{Transport: tr}
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	c := newClient(t, v.URL, client.WithHTTPClient(hc))
	todos, err := c.Shape(client.ShapeDef{Table: "todos"})
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, c, "leak")
	o, err := client.NewOptimistic(client.OptimisticOptions{Writer: w, Shapes: []*client.Shape{todos}})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- todos.Run(ctx) }()
	if err := todos.WaitUpToDate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAndAwait(ctx, insertTodo(newUUID(), "x"), todos); err != nil {
		t.Fatal(err)
	}
	v.stop()
	applyDone := make(chan error, 1)
	go func() {
		_, err := o.Apply(ctx, insertTodo(newUUID(), "y"))
		applyDone <- err
	}()
	waitFor(t, o, "the local row", func() bool { return o.Pending() == 1 })
	cancel()
	if err := <-applyDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply: %v", err)
	}
	if err := <-runDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	o.Close()
	tr.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // connection goroutines end asynchronously after CloseIdleConnections
	}
}
