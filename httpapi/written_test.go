package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shapecache"
)

// gatedSnapshotter stops a snapshot after its first `at` rows until
// release is closed, then fails it with fail if that is set; reached is
// closed when it stops. Only the first snapshot is gated.
type gatedSnapshotter struct {
	shapecache.Snapshotter
	at      int
	reached chan struct{}
	release chan struct{}
	fail    error
	used    atomic.Bool
}

func newGate(at int, fail error) *gatedSnapshotter {
	return &gatedSnapshotter{at: at, reached: make(chan struct{}), release: make(chan struct{}), fail: fail}
}

func (g *gatedSnapshotter) Snapshot(ctx context.Context, q postgres.SnapshotQuery, info func(postgres.SnapshotInfo) error, row func([][]byte) error) error {
	if g.used.Swap(true) {
		return g.Snapshotter.Snapshot(ctx, q, info, row)
	}
	n := 0
	return g.Snapshotter.Snapshot(ctx, q, info, func(raw [][]byte) error {
		if n++; n == g.at+1 {
			close(g.reached)
			select {
			case <-g.release:
			case <-ctx.Done():
				return ctx.Err()
			}
			if g.fail != nil {
				return g.fail
			}
		}
		return row(raw)
	})
}

// within runs f and fails the test if it takes more than 30 s (what it
// waits for then never came).
func within[T any](t *testing.T, what string, f func() (T, error)) T {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() { v, err := f(); done <- result{v, err} }()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: nothing within 30 s", what)
	}
	panic("unreachable")
}

// TestSnapshotChunkStreamedWhileWritten stops a shape's snapshot half way:
// the client of offset=-1 already receives the rows written so far, then,
// once the snapshot goes on, exactly the whole chunk (every row once, in
// order, then snapshot-end), and the shape continues from its offset.
func TestSnapshotChunkStreamedWhileWritten(t *testing.T) {
	const rows = 3000
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`,
		fmt.Sprintf(`INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, %d) g`, rows))
	gate := newGate(1000, nil)
	st := startStackWith(t, db, Config{LongPollTimeout: 5 * time.Second}, func(s shapecache.Snapshotter) shapecache.Snapshotter {
		gate.Snapshotter = s
		return gate
	})
	respc := make(chan *http.Response, 1)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Get(st.shapeURL("table", "items", "offset", "-1"))
		if err != nil {
			errc <- err
			return
		}
		respc <- resp
	}()
	within(t, "the snapshot reaching row 1000", func() (any, error) { <-gate.reached; return nil, nil })
	var resp *http.Response
	select {
	case resp = <-respc:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		close(gate.release)
		t.Fatal("no response within 30 s while the snapshot was stopped half way: the chunk is not served while it is written")
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(volt.HeaderOffset) != "0_0" {
		t.Fatalf("offset=-1: %d, offset %q", resp.StatusCode, resp.Header.Get(volt.HeaderOffset))
	}
	first := make([]byte, 1024)
	n := within(t, "the first rows while the snapshot is stopped", func() (int, error) { return io.ReadAtLeast(resp.Body, first, len(first)) })
	close(gate.release)
	rest := within(t, "the rest of the chunk", func() ([]byte, error) { return io.ReadAll(resp.Body) })
	msgs := messages(t, append(first[:n], rest...))
	if len(msgs) != rows+1 {
		t.Fatalf("%d messages, want %d rows and snapshot-end", len(msgs), rows)
	}
	for i, m := range msgs[:rows] {
		v, _ := m["value"].(map[string]any)
		if v == nil || v["id"] != fmt.Sprint(i+1) {
			t.Fatalf("message %d: %v, want row %d", i, m, i+1)
		}
	}
	if h, _ := msgs[rows]["headers"].(map[string]any); h == nil || h["control"] != "snapshot-end" {
		t.Fatalf("last message %v, want snapshot-end", msgs[rows])
	}
	handle := resp.Header.Get(volt.HeaderHandle)
	t.Logf("chunk received at %v", time.Now())
	next := mustFetch(t, st.shapeURL("table", "items", "offset", "0_0", "handle", handle))
	if next.status != 200 || !hasHeader(next.header, volt.HeaderUpToDate) || len(messages(t, next.body)) != 1 {
		t.Fatalf("offset 0_0: %d %v %s", next.status, next.header, next.body)
	}
}

// TestSnapshotChunkCutWhenSnapshotFails: a snapshot that fails after its
// first rows were sent ends the response short of a JSON array (the
// client sees a failed request, not a complete chunk), and a retry gets
// the whole shape from a new snapshot.
func TestSnapshotChunkCutWhenSnapshotFails(t *testing.T) {
	const rows = 3000
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`,
		fmt.Sprintf(`INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, %d) g`, rows))
	gate := newGate(1000, errors.New("connection lost"))
	st := startStackWith(t, db, Config{LongPollTimeout: 5 * time.Second}, func(s shapecache.Snapshotter) shapecache.Snapshotter {
		gate.Snapshotter = s
		return gate
	})
	u := st.shapeURL("table", "items", "offset", "-1")
	type got struct {
		resp *http.Response
		err  error
	}
	done := make(chan got, 1)
	go func() { resp, err := http.Get(u); done <- got{resp, err} }()
	within(t, "the snapshot reaching row 1000", func() (any, error) { <-gate.reached; return nil, nil })
	var g got
	select {
	case g = <-done:
	case <-time.After(30 * time.Second):
		close(gate.release)
		t.Fatal("no response within 30 s while the snapshot was stopped half way")
	}
	if g.err != nil || g.resp.StatusCode != 200 {
		t.Fatalf("offset=-1: %v %v", g.resp, g.err)
	}
	close(gate.release)
	cut := within(t, "the cut response", func() (got, error) {
		b, err := io.ReadAll(g.resp.Body)
		return got{err: err, resp: &http.Response{ContentLength: int64(len(b))}}, nil
	})
	g.resp.Body.Close()
	if cut.err == nil {
		t.Fatalf("the response of a failed snapshot ended cleanly after %d bytes", cut.resp.ContentLength)
	}
	retry := mustFetch(t, u)
	if retry.status != 200 {
		t.Fatalf("retry: %d %s", retry.status, retry.body)
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(retry.body, &msgs); err != nil || len(msgs) != rows+1 {
		t.Fatalf("retry: %d messages (%v), want %d rows and snapshot-end", len(msgs), err, rows)
	}
}
