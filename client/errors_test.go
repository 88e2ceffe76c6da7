package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/volttest"
)

// errsClosedURL returns the URL of a local port nothing listens on.
func errsClosedURL(t *testing.T) string {
	return fmt.Sprintf("http://127.0.0.1:%d", volttest.FreePort(t))
}

// errsCheckDown checks what a call returns when the server is down and
// its context times out: the context's error and the connection's.
func errsCheckDown(t *testing.T, what string, err error) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%s: %v does not wrap ECONNREFUSED", what, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: %v does not wrap context.DeadlineExceeded", what, err)
	}
	var re *client.RetryError
	if !errors.As(err, &re) || re.Attempts < 1 {
		t.Errorf("%s: %v is not a *RetryError with attempts", what, err)
	}
}

func TestErrorsServerDownWrapsCause(t *testing.T) {
	url := errsClosedURL(t)
	c, err := client.New(url, client.WithBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	items := client.ShapeDef{Table: "items"}

	t.Run("Shape.Run", func(t *testing.T) {
		sh, err := c.Shape(items)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		errsCheckDown(t, "Shape.Run", sh.Run(ctx))
		// The Await methods wrap it too.
		errsCheckDown(t, "WaitUpToDate", sh.WaitUpToDate(context.Background()))
	})
	t.Run("Shape waiters", func(t *testing.T) {
		// While Run retries, a waiter whose context ends learns why the
		// shape does not advance.
		sh, err := c.Shape(items)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- sh.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer wcancel()
		errsCheckDown(t, "WaitUpToDate while running", sh.WaitUpToDate(wctx))
		errsCheckDown(t, "AwaitTxid while running", sh.AwaitTxid(wctx, 1))
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Run: %v", err)
		}
	})
	t.Run("Stream.Run", func(t *testing.T) {
		s, err := c.Stream(items, client.LiveSSE())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		errsCheckDown(t, "Stream.Run", s.Run(ctx, func(client.Batch) error { return nil }))
	})
	t.Run("Writer", func(t *testing.T) {
		w, err := c.Writer("down")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		// Two calls at once: one sends and retries, the other waits for
		// its turn; both see why the writes do not get through.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = w.Write(ctx, insertTodo(newUUID(), fmt.Sprint("t", i)))
			}()
		}
		wg.Wait()
		errsCheckDown(t, "Writer.Write", errs[0])
		errsCheckDown(t, "Writer.Write", errs[1])
		ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel2()
		errsCheckDown(t, "Writer.Flush", w.Flush(ctx2))
		if n := len(w.Pending()); n != 2 {
			t.Errorf("%d transactions pending, want 2", n)
		}
	})
}

func errsRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// errsEvent is one OnError call.
type errsEvent struct {
	err     error
	attempt int
	retryIn time.Duration
}

// errsRecorder collects OnError calls and cancels after stopAt of them.
type errsRecorder struct {
	mu     sync.Mutex
	events []errsEvent
	stopAt int
	cancel context.CancelFunc
}

func (r *errsRecorder) onError(err error, attempt int, retryIn time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, errsEvent{err, attempt, retryIn})
	if len(r.events) == r.stopAt {
		r.cancel()
	}
}

// errsCheckBackoff checks that the calls came once per failed attempt, in
// order, each waiting within its exponential bound, and that the waits
// grow.
func errsCheckBackoff(t *testing.T, r *errsRecorder, minB, maxB time.Duration, match func(error) bool) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) != r.stopAt {
		t.Fatalf("%d OnError calls, want %d", len(r.events), r.stopAt)
	}
	var early, late time.Duration
	for i, ev := range r.events {
		if ev.attempt != i+1 {
			t.Errorf("call %d: attempt %d", i, ev.attempt)
		}
		if !match(ev.err) {
			t.Errorf("call %d: unexpected error %v", i, ev.err)
		}
		if ceil := min(maxB, minB<<i); ev.retryIn < 0 || ev.retryIn > ceil {
			t.Errorf("attempt %d: retry in %v, want 0…%v", ev.attempt, ev.retryIn, ceil)
		}
		if i < 3 {
			early = max(early, ev.retryIn)
		} else if i >= r.stopAt-5 {
			late = max(late, ev.retryIn)
		}
	}
	// Full jitter: the first waits are at most 4·min; the chance that
	// five later ones (bounds 32·min to 512·min) all stay under 4·min is
	// below 10⁻⁶.
	if late <= 4*minB || late <= early {
		t.Errorf("waits do not grow: first three at most %v, last five at most %v", early, late)
	}
}

func TestErrorsOnErrorEachAttempt(t *testing.T) {
	const minB, maxB = time.Millisecond, time.Second
	url := errsClosedURL(t)

	t.Run("Stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r := &errsRecorder{stopAt: 10, cancel: cancel}
		c, err := client.New(url, client.WithBackoff(minB, maxB), client.WithOnError(r.onError))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Stream(client.ShapeDef{Table: "items"})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Run(ctx, func(client.Batch) error { return nil })
		var re *client.RetryError
		if !errors.As(err, &re) || re.Attempts != 10 || !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Run: %v", err)
		}
		errsCheckBackoff(t, r, minB, maxB, errsRefused)
	})
	t.Run("Writer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r := &errsRecorder{stopAt: 10, cancel: cancel}
		c, err := client.New(url, client.WithBackoff(minB, maxB), client.WithOnError(r.onError))
		if err != nil {
			t.Fatal(err)
		}
		w, err := c.Writer("observed")
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Write(ctx, insertTodo(newUUID(), "x"))
		if !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Write: %v", err)
		}
		errsCheckBackoff(t, r, minB, maxB, errsRefused)
	})
	t.Run("5xx", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"code":"database_unreachable","message":"Database is unreachable"}`)
		}))
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r := &errsRecorder{stopAt: 10, cancel: cancel}
		c, err := client.New(srv.URL, client.WithBackoff(minB, maxB), client.WithOnError(r.onError))
		if err != nil {
			t.Fatal(err)
		}
		sh, err := c.Shape(client.ShapeDef{Table: "items"})
		if err != nil {
			t.Fatal(err)
		}
		err = sh.Run(ctx)
		var herr *client.Error
		if !errors.As(err, &herr) || herr.StatusCode != 503 || herr.Message != "Database is unreachable" || !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		errsCheckBackoff(t, r, minB, maxB, func(err error) bool {
			var herr *client.Error
			return errors.As(err, &herr) && herr.StatusCode == 503 && herr.Code == "database_unreachable"
		})
	})
}

func TestErrorsClientErrorNotRetried(t *testing.T) {
	t.Run("shape", func(t *testing.T) {
		dbURL := pgtest.NewDB(t)
		pgtest.Exec(t, dbURL, todosDDL)
		v := startVolt(t, dbURL)
		ctx := ctxT(t)
		var calls []errsEvent
		c := newClient(t, v.URL, client.WithOnError(func(err error, attempt int, retryIn time.Duration) {
			calls = append(calls, errsEvent{err, attempt, retryIn})
		}))
		sh, err := c.Shape(client.ShapeDef{Table: "todos", Where: "no_such_column = 1"})
		if err != nil {
			t.Fatal(err)
		}
		err = sh.Run(ctx)
		var herr *client.Error
		if !errors.As(err, &herr) || herr.StatusCode != http.StatusBadRequest || !errors.Is(err, client.ErrBadRequest) {
			t.Fatalf("Run: %v, want a 400 *client.Error", err)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "no_such_column") || !strings.Contains(err.Error(), "400") {
			t.Errorf("error %q does not name the status and the server's complaint", err)
		}
		if len(calls) != 1 || calls[0].err != err || calls[0].attempt != 1 || calls[0].retryIn != client.NoRetry {
			t.Errorf("OnError calls %+v, want one with the returned error and NoRetry", calls)
		}
	})
	t.Run("writer", func(t *testing.T) {
		var requests atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"message":"Invalid request","errors":{"client_id":["is taken"]}}`)
		}))
		defer srv.Close()
		var calls []errsEvent
		c := newClient(t, srv.URL, client.WithOnError(func(err error, attempt int, retryIn time.Duration) {
			calls = append(calls, errsEvent{err, attempt, retryIn})
		}))
		w, err := c.Writer("c")
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Write(ctxT(t), insertTodo(newUUID(), "x"))
		var herr *client.Error
		if !errors.As(err, &herr) || herr.StatusCode != http.StatusBadRequest || herr.Message != "Invalid request" ||
			!strings.Contains(err.Error(), "is taken") {
			t.Fatalf("Write: %v, want the 400 and the server's message", err)
		}
		if n := requests.Load(); n != 1 || len(calls) != 1 || calls[0].err != err || calls[0].retryIn != client.NoRetry {
			t.Errorf("%d requests, OnError calls %+v; want one of each", n, calls)
		}
	})
}

// errsReadmeGo runs README.md's Go snippet, unchanged (TestErrorsReadme
// checks that).
func errsReadmeGo(ctx context.Context, url string, nextSeq int64, id string) (volt.MutationResult, error) {
	type Todo struct {
		ID    string `db:"id"`
		Title string `db:"title"`
		Done  bool   `db:"done"`
	}
	c, _ := client.New(url, client.WithOnError(func(err error, attempt int, retryIn time.Duration) {
		log.Println(err, "retry in", retryIn)
	}))
	todos, _ := client.ShapeOf[Todo](c, client.ShapeDef{Table: "todos"})
	w, _ := c.Writer("device-1", client.WithSeqStore(client.NewMemorySeqStore(nextSeq))) // persist seqs: your own SeqStore
	opt, _ := client.NewOptimistic(client.OptimisticOptions{Writer: w, Shapes: []*client.Shape{todos.Shape}})
	go todos.Run(ctx)
	insert := []volt.Mutation{{Op: volt.OpInsert, Table: "todos",
		Values: map[string]any{"id": id, "title": "buy milk", "done": false}}}

	// Online: returns once accepted and visible in todos (a rejection is a *client.RejectedError).
	res, err := w.WriteAndAwait(ctx, insert, todos.Shape)
	for _, todo := range todos.All() {
		log.Println(todo.Title, todo.Done)
	}

	// Optimistic: shown at once in opt.Rows(todos), kept on top until its echo.
	opt.OnRollback(func(seq int64, res volt.MutationResult) { log.Println("undone:", res.Code) })
	done := []volt.Mutation{{Op: volt.OpUpdate, Table: "todos",
		Key: map[string]any{"id": id}, Values: map[string]any{"done": true}}}
	res, err = opt.Apply(ctx, done)

	return res, err
}

// errsReadmeSnippet returns the lines of the Go block in README.md's "Go
// client" section.
func errsReadmeSnippet(t *testing.T) []string {
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	section, in := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "## "):
			section = l == "## Go client"
		case section && l == "```go":
			in = true
		case in && l == "```":
			return lines
		case in:
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	t.Fatal("README.md has no Go block in a \"Go client\" section")
	return nil
}

func TestErrorsReadme(t *testing.T) {
	snippet := errsReadmeSnippet(t)
	src, err := os.ReadFile("errors_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, l := range strings.Split(string(src), "\n") {
		body = append(body, strings.TrimSpace(l))
	}
	if !strings.Contains(strings.Join(body, "\n"), "\n"+strings.Join(snippet, "\n")+"\n") {
		t.Fatalf("README.md's Go snippet differs from errsReadmeGo:\n%s", strings.Join(snippet, "\n"))
	}

	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, `CREATE TABLE todos (id uuid PRIMARY KEY, title text, done bool)`)
	v := startVolt(t, dbURL)
	id := newUUID()
	res, err := errsReadmeGo(ctxT(t), v.URL, 1, id)
	if err != nil || res.Status != volt.StatusAccepted || res.Seq != 2 {
		t.Fatalf("snippet: %+v, %v", res, err)
	}
	var title string
	var done bool
	if err := connect(t, dbURL).QueryRow(ctxT(t), `SELECT title, done FROM todos WHERE id = $1`, id).Scan(&title, &done); err != nil || title != "buy milk" || !done {
		t.Errorf("todo after the snippet: %q, %v, %v", title, done, err)
	}
}
