package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// parkedMem is the process's memory after a full GC: goroutine stacks
// and live heap.
type parkedMem struct{ stack, heap uint64 }

func measureParked() parkedMem {
	var ms runtime.MemStats
	for range 3 { // stacks shrink at GC; a few rounds let them settle
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return parkedMem{ms.StackInuse, ms.HeapAlloc}
}

// parkPolls opens n connections to addr, each sending the request line
// path and no more: they stay open (nothing reads the answers).
func parkPolls(t *testing.T, addr, path string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

// TestParkedPollMemory measures the memory a parked live long-poll holds
// in volt's handler (goroutine stack and heap, after GC), next to a bare
// net/http handler parked on a channel in the same process (the
// baseline). Measured: bare 6 KB of stack (a 4 KB handler stack and the
// connection's 2 KB background reader) and 14.5 KB of heap; volt 10 KB
// and 16 KB: the handler's stack grows to 8 KB while the request is
// parsed and read, and cannot shrink back to 4 KB while parked (net/http's
// frames and the runtime's reserve take more than a quarter of it). The
// test keeps volt within 6 KB of stack (so not a 16 KB stack) and 4 KB of
// heap of the bare handler. The figures are logged, not asserted: the
// heap after GC varies from run to run (CI saw the bare handler at 6.9
// and at 14.5 KB), and the target lives in volt bench S11; the test
// checks that every poll parks in volt's shallow frame.
func TestParkedPollMemory(t *testing.T) {
	const polls = 400
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'one')`)
	st := startStack(t, db, Config{LongPollTimeout: 5 * time.Minute})
	first := mustFetch(t, st.shapeURL("table", "items", "offset", "-1"))
	handle := first.header.Get(volt.HeaderHandle)
	head := mustFetch(t, st.shapeURL("table", "items", "offset", "0_0", "handle", handle))
	offset := head.header.Get(volt.HeaderOffset)
	live := strings.TrimPrefix(st.shapeURL("table", "items", "offset", offset, "handle", handle, "live", "true", "cursor", "7"), st.url)

	// The bare baseline: a handler that parks on a channel.
	var bareParked atomic.Int64
	release := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bareParked.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	go func() { _ = bare.Serve(ln) }()
	t.Cleanup(func() { close(release); bare.Close() })

	base := measureParked()
	parkPolls(t, ln.Addr().String(), live, polls)
	waitFor(t, 20*time.Second, "bare handlers to park", func() bool { return bareParked.Load() == polls })
	withBare := measureParked()
	parkPolls(t, strings.TrimPrefix(st.url, "http://"), live, polls)
	waitFor(t, 20*time.Second, "volt's long-polls to park", func() bool { return st.srv.parked.Load() == polls })
	withVolt := measureParked()

	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / polls }
	bareStack, bareHeap := per(base.stack, withBare.stack), per(base.heap, withBare.heap)
	voltStack, voltHeap := per(withBare.stack, withVolt.stack), per(withBare.heap, withVolt.heap)
	t.Logf("per parked poll: bare net/http stack %.0f B heap %.0f B; volt stack %.0f B heap %.0f B", bareStack, bareHeap, voltStack, voltHeap)
}

// parkAfter opens n connections to addr, each sending first (and reading
// its whole answer), then, on the same connection, path without reading
// the answer: the second request is served by the goroutine that served
// the first, with the stack the first grew.
func parkAfter(t *testing.T, addr string, first func(int) string, path string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", first(i)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

// TestParkedPollStackAfterDeepRequest: a connection whose goroutine grew
// its stack serving an earlier request (here a where clause nested 150
// deep, refused) parks its next long-poll, or SSE stream, in frames
// shallow enough for the runtime to shrink that stack at GC (it halves a
// stack less than a quarter used). Parked in the helpers' frames, both
// kept a 16 KB stack: 19.5 KB per poll here (with the connection's 2 KB
// background reader), against 11 KB once shallow.
func TestParkedPollStackAfterDeepRequest(t *testing.T) {
	const polls = 300
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'one')`)
	st := startStack(t, db, Config{LongPollTimeout: 5 * time.Minute, SSETimeout: 5 * time.Minute})
	first := mustFetch(t, st.shapeURL("table", "items", "offset", "-1"))
	handle := first.header.Get(volt.HeaderHandle)
	head := mustFetch(t, st.shapeURL("table", "items", "offset", "0_0", "handle", handle))
	offset := head.header.Get(volt.HeaderOffset)
	addr := strings.TrimPrefix(st.url, "http://")
	deep := func(i int) string {
		where := strings.Repeat("NOT ", 150) + fmt.Sprintf("nosuch = %d", i) // a new definition each time: parsed again
		return strings.TrimPrefix(st.shapeURL("table", "items", "offset", "-1", "where", where), st.url)
	}
	if r := mustFetch(t, st.url+deep(-1)); r.status != http.StatusBadRequest {
		t.Fatalf("deep where: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name string
		kv   []string
	}{
		{"long-poll", nil},
		{"SSE", []string{"live_sse", "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := strings.TrimPrefix(st.shapeURL(append([]string{"table", "items", "offset", offset, "handle", handle, "live", "true", "cursor", "7"}, tc.kv...)...), st.url)
			base := measureParked()
			conns := parkAfter(t, addr, deep, live, polls)
			if tc.kv == nil {
				waitFor(t, 20*time.Second, "volt's long-polls to park", func() bool { return st.srv.parked.Load() == polls })
			} else {
				// An SSE stream sends its headers, then waits.
				for _, c := range conns {
					if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			var after parkedMem
			for range 4 {
				after = measureParked()
			}
			stack := (float64(after.stack) - float64(base.stack)) / polls
			heap := (float64(after.heap) - float64(base.heap)) / polls
			t.Logf("per parked %s after a deep request: stack %.0f B, heap %.0f B", tc.name, stack, heap)
			// Under -race every frame is about twice as large: the deep
			// request grows the stack to 32 KB, and parked it shrinks to 16.
			if bound := 13 << 10; stack > float64(bound) && (!raceDetector || stack > 2*float64(bound)) {
				t.Errorf("a parked %s holds %.0f B of stack after a deep request, want its grown stack halved", tc.name, stack)
			}
			// An SSE stream used to hold a 64 KB body buffer (82 KB of heap
			// per stream here); now 4 KB.
			if heap > 32<<10 {
				t.Errorf("a parked %s holds %.0f B of heap", tc.name, heap)
			}
			for _, c := range conns {
				c.Close()
			}
		})
	}
}
