package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

func TestNewChecksURL(t *testing.T) {
	for _, u := range []string{"", "localhost:3000", "ftp://x", "http://[::1"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	c, err := client.New("http://localhost:3000")
	if err != nil || c.URL() != "http://localhost:3000" {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := c.Writer(""); err == nil || !strings.Contains(err.Error(), "client id") {
		t.Errorf("Writer with an empty client id: %v", err)
	}
}

// TestLoggerAndOnErrorSeeTheCause: with the server down, WithOnError and
// WithLogger see every retry with its cause, and the error Run returns
// wraps it.
func TestLoggerAndOnErrorSeeTheCause(t *testing.T) {
	var buf bytes.Buffer
	var causes []error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(errsClosedURL(t), client.WithBackoff(time.Millisecond, 5*time.Millisecond),
		client.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))),
		client.WithOnError(func(err error, attempt int, retryIn time.Duration) {
			causes = append(causes, err)
			if attempt == 3 {
				cancel()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	sh, err := c.Shape(client.ShapeDef{Table: "items"})
	if err != nil {
		t.Fatal(err)
	}
	err = sh.Run(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Run: %v", err)
	}
	if len(causes) != 3 {
		t.Fatalf("%d OnError calls, want 3", len(causes))
	}
	for _, e := range causes {
		if !errors.Is(e, syscall.ECONNREFUSED) {
			t.Errorf("OnError got %v, not the refused connection", e)
		}
	}
	if n := strings.Count(buf.String(), "volt client: retrying"); n != 3 || !strings.Contains(buf.String(), "connection refused") {
		t.Errorf("log (%d retries):\n%s", n, buf.String())
	}
}

// TestClientURLs: shapes are read from <base>/v1/shape and writes sent to
// <base>/v1/mutations, the base's path a prefix; ShapeURL names a proxy.
func TestClientURLs(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" table="+r.URL.Query().Get("table")+" key="+r.URL.Query().Get("key"))
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest) // ends each call at once
	}))
	defer srv.Close()
	ctx := context.Background()
	c, err := client.New(srv.URL + "/sync/?key=k")
	if err != nil {
		t.Fatal(err)
	}
	run := func(opts ...client.ShapeOption) {
		sh, err := c.Shape(client.ShapeDef{Table: "todos"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Run(ctx); !errors.Is(err, client.ErrBadRequest) {
			t.Fatalf("Run: %v", err)
		}
	}
	run()
	run(client.ShapeURL("/api/todos"))
	run(client.ShapeURL("http://" + srv.Listener.Addr().String() + "/other?key=p"))
	w, _ := c.Writer("urls")
	if _, err := w.Write(ctx, []volt.Mutation{{Op: volt.OpDelete, Table: "todos", Key: map[string]any{"id": 1}}}); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("Write: %v", err)
	}
	want := []string{
		"GET /sync/v1/shape table=todos key=k",
		"GET /api/todos table=todos key=",
		"GET /other table=todos key=p",
		"POST /sync/v1/mutations table= key=k",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("requests\n%q\nwant\n%q", got, want)
	}
	if _, err := c.Shape(client.ShapeDef{Table: "todos"}, client.ShapeURL("http://[::1")); err == nil {
		t.Error("a ShapeURL that does not parse was accepted")
	}
}
