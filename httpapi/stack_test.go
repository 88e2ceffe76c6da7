package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shapecache"
	"github.com/voltsync/volt/shapelog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var stackSeq atomic.Int64

// stack is a Server wired as volt serve wires it (cmd/volt/serve.go), in
// this process so tests can look at its counters: a real Postgres, a shape
// cache fed by logical replication, and a listening HTTP server.
type stack struct {
	srv *Server
	url string
	// tableLookups counts the catalog queries of the server's cache.
	tableLookups *atomic.Int64
}

// countingInspector counts the cache's catalog queries (Table calls).
type countingInspector struct {
	shapecache.Inspector
	n *atomic.Int64
}

func (c countingInspector) Table(ctx context.Context, schema, name string) (*volt.Table, error) {
	c.n.Add(1)
	return c.Inspector.Table(ctx, schema, name)
}

func startStack(t *testing.T, db string, cfg Config) *stack {
	t.Helper()
	return startStackWith(t, db, cfg, nil)
}

// startStackWith is startStack with the cache's Snapshotter wrapped by
// wrap (nil: not wrapped).
func startStackWith(t *testing.T, db string, cfg Config, wrap func(shapecache.Snapshotter) shapecache.Snapshotter) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	store, err := shapelog.OpenStore(t.TempDir(), shapelog.Options{ChunkBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("httpapi_%d", stackSeq.Add(1))
	inspector := &postgres.Inspector{Pool: pool}
	publisher := postgres.NewPublisher(pool, "volt_publication_"+name)
	lookups := &atomic.Int64{}
	var snapshotter shapecache.Snapshotter = &postgres.Snapshotter{Pool: pool}
	if wrap != nil {
		snapshotter = wrap(snapshotter)
	}
	cache := &shapecache.Cache{Store: store, Inspector: countingInspector{inspector, lookups}, Snapshotter: snapshotter, Publisher: publisher, Logger: quiet}
	if err := cache.Open(ctx); err != nil {
		t.Fatal(err)
	}
	reader := postgres.NewReader(postgres.ReaderConfig{URL: db, Publication: publisher.Name(), Slot: "volt_slot_" + name, Logger: quiet})
	if _, err := reader.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	cache.Follow(func(ctx context.Context) error { return reader.Run(ctx, cache) })
	srv := &Server{Cache: cache, Ready: reader.Connected, Logger: quiet, Config: cfg}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		closeCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = srv.Close(closeCtx)
		cancel()
		_ = cache.Close() // stops and joins replication first
		pool.Close()
	})
	return &stack{srv: srv, url: srv.URL(), tableLookups: lookups}
}

// shapeURL builds a /v1/shape URL from key/value pairs.
func (st *stack) shapeURL(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return st.url + "/v1/shape?" + q.Encode()
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func fetch(rawURL string) (reply, error) {
	resp, err := http.Get(rawURL)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, body}, err
}

func mustFetch(t *testing.T, rawURL string) reply {
	t.Helper()
	r, err := fetch(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// messages decodes a response body.
func messages(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	if err := json.Unmarshal(body, &msgs); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return msgs
}

// waitFor polls cond every 5 ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hasHeader reports whether h has name, even with an empty value.
func hasHeader(h http.Header, name string) bool {
	_, ok := h[http.CanonicalHeaderKey(name)]
	return ok
}
