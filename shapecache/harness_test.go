package shapecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// harness runs a Cache fed by a real replication stream from a test
// database, the way volt serve wires them.
type harness struct {
	t      *testing.T
	url    string
	dir    string
	pool   *pgxpool.Pool
	cache  *Cache
	insp   *postgres.Inspector
	cancel context.CancelFunc
	done   <-chan error // replication's result if it stops on its own
}

const itemsDDL = `CREATE TABLE items (id bigint PRIMARY KEY, owner_id int NOT NULL, title text)`

// startHarness opens a cache on dir (reusing its shapes) and starts
// replication into it; configure adjusts the cache before Open.
func startHarness(t *testing.T, url, dir string, configure func(*Cache)) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	store, err := shapelog.OpenStore(dir, shapelog.Options{ChunkBytes: 16 << 10, DeferSnapshotSync: true})
	if err != nil {
		t.Fatal(err)
	}
	insp := &postgres.Inspector{Pool: pool}
	pub := postgres.NewPublisher(pool, "volt_publication_test")
	c := &Cache{
		Store: store, Inspector: insp, Snapshotter: &postgres.Snapshotter{Pool: pool}, Publisher: pub,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(c)
	}
	if err := c.Open(ctx); err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReader(postgres.ReaderConfig{URL: url, Publication: pub.Name(), Slot: "volt_slot_test", Logger: c.Logger})
	if _, err := r.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, url: url, dir: dir, pool: pool, cache: c, insp: insp, cancel: cancel}
	h.done = c.Follow(func(ctx context.Context) error { return r.Run(ctx, c) })
	t.Cleanup(h.stop)
	return h
}

// stop stops replication and closes the cache (idempotent).
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := h.cache.Close(); err != nil { // stops and joins replication first
		h.t.Errorf("close cache: %v", err)
	}
	h.pool.Close()
}

// newShape creates (or finds) the shape of items with the given where
// clause and waits for its snapshot.
func (h *harness) newShape(where string) *Entry {
	h.t.Helper()
	e, err := h.getShape(where)
	if err != nil {
		h.t.Fatalf("shape %q: %v", where, err)
	}
	<-e.Ready()
	if err := e.Err(); err != nil {
		h.t.Fatalf("snapshot of %q: %v", where, err)
	}
	return e
}

func (h *harness) getShape(where string) (*Entry, error) {
	table, err := h.insp.Table(context.Background(), "public", "items")
	if err != nil {
		return nil, err
	}
	s, err := shape.New(shape.Definition{Schema: "public", Table: "items", Where: where}, table)
	if err != nil {
		return nil, err
	}
	return h.cache.GetOrCreate(context.Background(), s)
}

// message is the part of a log message the tests look at.
type message struct {
	Key     string            `json:"key"`
	Value   map[string]string `json:"value"`
	Headers struct {
		Operation string `json:"operation"`
		Control   string `json:"control"`
	} `json:"headers"`
}

// readAll reads e's log from the start up to its current end.
func readAll(t *testing.T, e *Entry) []message {
	t.Helper()
	var out []message
	o := volt.BeforeAll
	for {
		res, err := e.Read(o)
		if err != nil {
			t.Fatalf("read %s: %v", e.Handle, err)
		}
		for _, b := range res.Entries {
			var m message
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if m.Headers.Control == "" {
				out = append(out, m)
			}
		}
		o = res.End
		if res.AtHead {
			return out
		}
	}
}

// rows applies e's log and returns the resulting rows by key.
func rows(t *testing.T, e *Entry) map[string]map[string]string {
	t.Helper()
	state := map[string]map[string]string{}
	for _, m := range readAll(t, e) {
		switch m.Headers.Operation {
		case "insert":
			state[m.Key] = m.Value
		case "update":
			for k, v := range m.Value {
				state[m.Key][k] = v
			}
		case "delete":
			delete(state, m.Key)
		}
	}
	return state
}

// waitFor waits (bounded) until cond holds, waking on e's changes.
func waitFor(t *testing.T, e *Entry, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := e.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (h *harness) exec(sql ...string) { pgtest.Exec(h.t, h.url, sql...) }

// insertOwners inserts one row per owner 0..n-1 (id = owner + base).
func (h *harness) insertOwners(n, base int) {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO items SELECT g + %d, g, 'row ' || g FROM generate_series(0, %d) g", base, n-1)
	h.exec(b.String())
}

var errTimeout = errors.New("timeout")

// poll waits (bounded) for cond, for conditions that have no signal to wait on
// (files removed by a background goroutine).
func poll(cond func() bool) error {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	return errTimeout
}
