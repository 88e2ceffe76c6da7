package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestAdmissionControl fills each admission cap and checks the 503 Electric
// sends, that parked live requests count as "existing" only (new clients
// still start), and that permits come back when requests end.
func TestAdmissionControl(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'one')`)
	v := startVolt(t, db, "VOLT_MAX_CONCURRENT_INITIAL=2", "VOLT_MAX_CONCURRENT_EXISTING=3", "VOLT_LONG_POLL_TIMEOUT=20s")

	f := newFollower(v, "table", "items")
	f.catchUp(t)
	live := v.shapeURL("table", "items", "handle", f.handle, "offset", f.offset, "live", "true")
	parked := startAll(t, 3, live, true)

	// The three long-polls hold every existing permit: a fourth request of
	// an existing shape is refused as soon as they are all in.
	catchUp := v.shapeURL("table", "items", "handle", f.handle, "offset", "0_0")
	r := pollStatus(t, catchUp, http.StatusServiceUnavailable)
	checkRefusal(t, r, "concurrent_request_limit_exceeded", "Concurrent existing request limit exceeded (limit: 3), please retry")

	// Parked live clients do not count against new clients.
	if r := get(t, v.shapeURL("table", "items", "offset", "-1")); r.Status != 200 {
		t.Fatalf("initial request while live clients are parked: %d %s", r.Status, r.Body)
	}

	// A change releases the long-polls and their permits.
	pgtest.Exec(t, db, `INSERT INTO items VALUES (2, 'two')`)
	for _, r := range parked.wait(t) {
		if r.Status != 200 || !bytes.Contains(r.Body, []byte(`"two"`)) {
			t.Fatalf("parked long-poll: %d %s", r.Status, r.Body)
		}
	}
	if r := get(t, catchUp); r.Status != 200 {
		t.Fatalf("existing request after the long-polls ended: %d %s", r.Status, r.Body)
	}

	// Initial requests are held while a new shape's snapshot waits for a
	// table lock; a third one is refused.
	ctx := context.Background()
	tx := lockholdBegin(t, db, `LOCK TABLE items IN ACCESS EXCLUSIVE MODE`)
	// They retry when refused, as clients do, and the probe (an initial
	// request that the lock does not hold) is refused only once both are in.
	held := startAll(t, 2, v.shapeURL("table", "items", "offset", "-1", "where", "id > 1"), true)
	r = pollStatus(t, v.shapeURL("table", "items", "offset", "-1"), http.StatusServiceUnavailable)
	checkRefusal(t, r, "concurrent_request_limit_exceeded", "Concurrent initial request limit exceeded (limit: 2), please retry")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range held.wait(t) {
		if r.Status != 200 || bytes.Count(r.Body, []byte(`"headers"`)) != 2 {
			t.Fatalf("held initial request: %d %s", r.Status, r.Body)
		}
	}
}

// TestMaxShapes checks that a request which would create a shape past
// -max-shapes gets 503 overloaded while existing shapes are still served,
// and that deleting a shape makes room.
func TestMaxShapes(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items SELECT g, 't' FROM generate_series(1, 3) g`)
	v := startVolt(t, db, "VOLT_MAX_SHAPES=2")

	a := get(t, v.shapeURL("table", "items", "offset", "-1", "where", "id > 0"))
	b := get(t, v.shapeURL("table", "items", "offset", "-1", "where", "id > 1"))
	if a.Status != 200 || b.Status != 200 {
		t.Fatalf("shapes within the limit: %d %d", a.Status, b.Status)
	}
	third := v.shapeURL("table", "items", "offset", "-1", "where", "id > 2")
	checkRefusal(t, get(t, third), "overloaded", "Shape limit reached (limit: 2 shapes), please retry")

	again := get(t, v.shapeURL("table", "items", "offset", "-1", "where", "id > 0"))
	if again.Status != 200 || again.Header.Get("electric-handle") != a.Header.Get("electric-handle") {
		t.Fatalf("existing shape at the limit: %d %s", again.Status, again.Body)
	}
	follow := get(t, v.shapeURL("table", "items", "offset", "0_0", "where", "id > 1", "handle", b.Header.Get("electric-handle")))
	if follow.Status != 200 {
		t.Fatalf("following an existing shape at the limit: %d %s", follow.Status, follow.Body)
	}

	if r := do(t, http.MethodDelete, v.shapeURL("table", "items", "where", "id > 0", "handle", a.Header.Get("electric-handle"))); r.Status != 202 && r.Status != 204 && r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := get(t, third); r.Status != 200 || len(r.Msgs) != 2 {
		t.Fatalf("new shape after a delete: %d %s", r.Status, r.Body)
	}
}

// TestStalledClientDropped requests a snapshot chunk far larger than the
// socket buffers and reads nothing: the server must give up on the client
// after the stall timeout and close the connection, and keep serving.
func TestStalledClientDropped(t *testing.T) {
	const rows, width = 16000, 1000 // about 16 MB in one chunk
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`,
		`INSERT INTO items SELECT g, repeat('x', `+strconv.Itoa(width)+`) FROM generate_series(1, `+strconv.Itoa(rows)+`) g`)
	v := startVolt(t, db, "VOLT_STALL_TIMEOUT=1s", "VOLT_CHUNK_BYTES="+strconv.Itoa(64<<20))

	// A small receive buffer keeps the kernel from taking the body for us.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(v.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/shape?table=items&offset=-1 HTTP/1.1\r\nHost: volt\r\n\r\n"); err != nil {
		t.Fatal(err)
	}

	// The drop is logged once the write deadline passes (after the
	// snapshot, which comes first).
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(v.Log(), "dropped a client that stopped reading") {
		if time.Now().After(deadline) {
			t.Fatal("the stalled client was not dropped")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Now read: what the kernels buffered, then the end of the connection,
	// well short of the body.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %d bytes: %v", n, err)
	}
	// A large page is streamed (chunked, no length): cut short, it ends in
	// an unexpected EOF instead of the last chunk.
	cut := resp.ContentLength >= 0 && n < resp.ContentLength || resp.ContentLength < 0 && errors.Is(err, io.ErrUnexpectedEOF)
	if resp.StatusCode != 200 || !cut {
		t.Fatalf("got %d: %d of %d bytes (err %v); want the body cut short", resp.StatusCode, n, resp.ContentLength, err)
	}
	t.Logf("stalled client received %d of %d bytes before the server closed the connection", n, resp.ContentLength)

	r := get(t, v.shapeURL("table", "items", "offset", "-1"))
	if r.Status != 200 || len(r.Msgs) != rows+1 {
		t.Fatalf("a reading client after the drop: %d, %d messages", r.Status, len(r.Msgs))
	}
}

// TestInitialRequestsCollapse starts hundreds of clients on one new shape
// at once: one shape is created (one snapshot), and every client gets the
// same handle and the same rows.
func TestInitialRequestsCollapse(t *testing.T) {
	const clients = 400
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`,
		`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g`)
	v := startVolt(t, db, "VOLT_MAX_CONCURRENT_INITIAL=1000", "VOLT_MAX_CONNS_PER_IP=1000")

	all := startAll(t, clients, v.shapeURL("table", "items", "offset", "-1"), false)
	t0 := time.Now()
	got := all.wait(t)
	t.Logf("%d clients served in %s", clients, time.Since(t0))
	for i, r := range got {
		if r.Status != 200 || r.Header.Get("electric-handle") != got[0].Header.Get("electric-handle") || !bytes.Equal(r.Body, got[0].Body) {
			t.Fatalf("client %d: %d handle %q (client 0: %q)", i, r.Status, r.Header.Get("electric-handle"), got[0].Header.Get("electric-handle"))
		}
	}
	if n := bytes.Count(got[0].Body, []byte(`"headers"`)); n != 5001 {
		t.Fatalf("want 5000 rows and snapshot-end, got %d messages", n)
	}
	if n := strings.Count(v.Log(), "shape created"); n != 1 {
		t.Fatalf("%d shapes created for %d clients of one definition, want 1:\n%s", n, clients, v.Log())
	}
}

// requests is a set of GETs running in the background.
type requests struct {
	wg   sync.WaitGroup
	res  []response
	errs []error
}

// startAll starts n concurrent GETs of rawURL; with retry, each repeats
// its GET while it gets 503.
func startAll(t *testing.T, n int, rawURL string, retry bool) *requests {
	t.Helper()
	rs := &requests{res: make([]response, n), errs: make([]error, n)}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	t.Cleanup(client.CloseIdleConnections)
	for i := range n {
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			for {
				rs.res[i], rs.errs[i] = fetchWith(client, rawURL)
				if !retry || rs.errs[i] != nil || rs.res[i].Status != http.StatusServiceUnavailable {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return rs
}

// wait returns the responses once every request has ended.
func (rs *requests) wait(t *testing.T) []response {
	t.Helper()
	rs.wg.Wait()
	for i, err := range rs.errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return rs.res
}

// fetchWith is get for use off the test goroutine, without decoding.
func fetchWith(c *http.Client, rawURL string) (response, error) {
	resp, err := c.Get(rawURL)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// pollStatus repeats a GET until it answers status (within 10 s).
func pollStatus(t *testing.T, rawURL string, status int) response {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := get(t, rawURL)
		if r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %d %s, want %d", rawURL, r.Status, r.Body, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkRefusal checks a load-shedding 503: code, message, a retry-after of
// 5 to 10 seconds and no caching anywhere.
func checkRefusal(t *testing.T, r response, code, message string) {
	t.Helper()
	var body struct{ Code, Message string }
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("want 503, got %d %s", r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Code != code || body.Message != message {
		t.Errorf("body %s, want code %q message %q", r.Body, code, message)
	}
	if ra, err := strconv.Atoi(r.Header.Get("retry-after")); err != nil || ra < 5 || ra > 10 {
		t.Errorf("retry-after %q, want 5..10", r.Header.Get("retry-after"))
	}
	if r.Header.Get("cache-control") != "no-store" || r.Header.Get("surrogate-control") != "no-store" {
		t.Errorf("cache headers %q / %q, want no-store", r.Header.Get("cache-control"), r.Header.Get("surrogate-control"))
	}
}
