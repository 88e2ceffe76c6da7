package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

// fakeServer answers shape requests from a script: the n-th request gets
// the n-th step; requests beyond the script wait until they are cancelled.
type fakeServer struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	steps []step
	reqs  []*http.Request
	times []time.Time
	next  chan int // receives the index of each request as it arrives
}

type step func(w http.ResponseWriter, r *http.Request)

func newFakeServer(t *testing.T, steps ...step) *fakeServer {
	f := &fakeServer{t: t, steps: steps, next: make(chan int, 100)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	i := len(f.reqs)
	f.reqs = append(f.reqs, r)
	f.times = append(f.times, time.Now())
	f.mu.Unlock()
	f.next <- i
	if i < len(f.steps) {
		f.steps[i](w, r)
		return
	}
	<-r.Context().Done()
}

// query returns the query of the i-th request.
func (f *fakeServer) query(i int) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[i].URL.Query()
}

func (f *fakeServer) opts() shapeOptions {
	return shapeOptions{URL: f.srv.URL, Table: "items", MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
}

const testSchema = `{"id":{"type":"int4","pk_index":0},"title":{"type":"text"},"n":{"type":"numeric"}}`

// answer replies with status, headers (pairs) and body.
func answer(status int, body string, hdr ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		if w.Header().Get("content-type") == "" {
			w.Header().Set("content-type", "application/json")
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// ok200 is a 200 log answer.
func ok200(handle, offset, body string, hdr ...string) step {
	return answer(200, body, append([]string{"electric-handle", handle, "electric-offset", offset}, hdr...)...)
}

func insert(id int, title string, extra string) string {
	return fmt.Sprintf(`{"key":"\"public\".\"items\"/\"%d\"","value":{"id":"%d","title":%q,"n":"1.50"},"headers":{"operation":"insert","relation":["public","items"]%s}}`, id, id, title, extra)
}

func upToDate(lsn int) string {
	return fmt.Sprintf(`{"headers":{"control":"up-to-date","global_last_seen_lsn":"%d"}}`, lsn)
}

const snapshotEnd = `{"headers":{"control":"snapshot-end","xmin":"750","xmax":"752","xip_list":["751"]}}`

// collect runs s in the background, sending every batch to the returned
// channel; stop cancels it and returns Run's error.
func collect(t *testing.T, s *Stream) (<-chan Batch, func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	batches := make(chan Batch, 100)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(b Batch) error { batches <- b; return nil }) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return batches, stop
}

func recv(t *testing.T, ch <-chan Batch) Batch {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch")
	}
	return Batch{}
}

func waitReq(t *testing.T, f *fakeServer, n int) {
	t.Helper()
	for {
		select {
		case i := <-f.next:
			if i >= n {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d never came", n)
		}
	}
}

func expectQuery(t *testing.T, q url.Values, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if got := q.Get(kv[i]); got != kv[i+1] {
			t.Errorf("request %v: %s = %q, want %q", q, kv[i], got, kv[i+1])
		}
	}
}

func TestStreamCatchUpAndLive(t *testing.T) {
	f := newFakeServer(t,
		ok200("h1", "0_0", "["+insert(1, "a", "")+"]", "electric-schema", testSchema),
		ok200("h1", "0_1", "["+insert(2, "b", "")+","+snapshotEnd+"]", "electric-schema", testSchema),
		ok200("h1", "0_inf", "["+upToDate(10)+"]", "electric-schema", testSchema, "electric-up-to-date", ""),
		ok200("h1", "20_2", `[{"key":"\"public\".\"items\"/\"1\"","value":{"id":"1","title":"A"},"headers":{"operation":"update","relation":["public","items"],"lsn":"20","op_position":2,"txids":[751],"last":true}},`+upToDate(20)+"]",
			"electric-cursor", "77", "electric-up-to-date", ""),
	)
	opts := f.opts()
	opts.Where, opts.Params, opts.Columns = "id > $1", []string{"0"}, []string{"id", "title", "n"}
	s, err := newStream(opts)
	if err != nil {
		t.Fatal(err)
	}
	batches, stop := collect(t, s)

	b := recv(t, batches)
	c := b.Events[0].(*Change)
	if c.Key != `"public"."items"/"1"` || c.Operation != volt.OpInsert || c.Value["id"] != int32(1) || c.Value["n"] != Decimal("1.50") || c.LSN != 0 {
		t.Errorf("first change %+v", c)
	}
	if b.Handle != "h1" || b.Offset != "0_0" || b.UpToDate() {
		t.Errorf("batch 1 at %s %s", b.Handle, b.Offset)
	}
	b = recv(t, batches)
	if se, ok := b.Events[1].(*SnapshotEnd); !ok || se.Xmin != 750 || se.Xmax != 752 || len(se.Xip) != 1 || se.Xip[0] != 751 {
		t.Errorf("snapshot-end %+v", b.Events[1])
	}
	b = recv(t, batches)
	if u, ok := b.Events[0].(*UpToDate); !ok || u.LSN != 10 || !b.UpToDate() || b.Offset != "0_inf" {
		t.Errorf("batch 3 %+v", b)
	}
	b = recv(t, batches)
	c = b.Events[0].(*Change)
	if c.Operation != volt.OpUpdate || c.LSN != 20 || c.OpPosition != 2 || len(c.Txids) != 1 || c.Txids[0] != 751 || !c.Last || c.Value["title"] != "A" {
		t.Errorf("live change %+v", c)
	}
	waitReq(t, f, 4)
	if s.Handle() != "h1" || s.Offset() != "20_2" {
		t.Errorf("position %s %s", s.Handle(), s.Offset())
	}
	expectQuery(t, f.query(0), "offset", "-1", "table", "items", "where", "id > $1", "params[1]", "0", "columns", `"id","title","n"`, "live", "")
	expectQuery(t, f.query(1), "offset", "0_0", "handle", "h1", "live", "")
	expectQuery(t, f.query(2), "offset", "0_1", "handle", "h1", "live", "")
	expectQuery(t, f.query(3), "offset", "0_inf", "handle", "h1", "live", "true", "cursor", "")
	expectQuery(t, f.query(4), "offset", "20_2", "handle", "h1", "live", "true", "cursor", "77")
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

func TestStreamMustRefetchMidStream(t *testing.T) {
	f := newFakeServer(t,
		ok200("h1", "0_0", "["+insert(1, "a", "")+","+snapshotEnd+"]", "electric-schema", testSchema),
		ok200("h1", "0_inf", "["+upToDate(10)+"]", "electric-schema", testSchema),
		answer(409, `[{"headers":{"control":"must-refetch"}}]`, "electric-handle", "h2"),
		ok200("h2", "0_0", "["+insert(2, "b", "")+"]", "electric-schema", testSchema),
	)
	s, _ := newStream(f.opts())
	batches, _ := collect(t, s)
	recv(t, batches)
	recv(t, batches)
	b := recv(t, batches)
	if m, ok := b.Events[0].(*MustRefetch); !ok || len(b.Events) != 1 || m.Handle != "h2" || b.Offset != "-1" {
		t.Fatalf("want a must-refetch batch, got %+v", b.Events)
	}
	b = recv(t, batches)
	if c := b.Events[0].(*Change); c.Value["id"] != int32(2) || b.Handle != "h2" {
		t.Errorf("after refetch: %+v", c)
	}
	waitReq(t, f, 4)
	expectQuery(t, f.query(2), "offset", "0_inf", "handle", "h1", "live", "true")
	expectQuery(t, f.query(3), "offset", "-1", "handle", "h2", "expired_handle", "h1", "live", "")
	expectQuery(t, f.query(4), "offset", "0_0", "handle", "h2")
}

func TestStreamRetriesHonourRetryAfter(t *testing.T) {
	f := newFakeServer(t,
		answer(503, `{"message":"not ready"}`, "retry-after", "1"),
		answer(429, `{}`),
		answer(500, `{"error":"Internal server error"}`),
		ok200("h1", "0_0", "["+insert(1, "a", "")+"]"),
	)
	s, _ := newStream(f.opts())
	batches, _ := collect(t, s)
	b := recv(t, batches)
	if b.Events[0].(*Change).Value["id"] != "1" { // no schema: text
		t.Errorf("change %+v", b.Events[0])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.times[1].Sub(f.times[0]); d < time.Second {
		t.Errorf("retried after %v despite retry-after: 1", d)
	}
	if d := f.times[3].Sub(f.times[1]); d > time.Second {
		t.Errorf("backoff without retry-after took %v (max 10ms)", d)
	}
}

func TestStreamRetriesNetworkErrors(t *testing.T) {
	f := newFakeServer(t, ok200("h1", "0_0", "["+insert(1, "a", "")+"]"))
	opts := f.opts()
	// A listener that is closed: connections are refused, then the URL is
	// switched to the real server by the transport.
	var calls int
	var mu sync.Mutex
	opts.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n <= 3 {
			return nil, errors.New("connection refused")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	s, _ := newStream(opts)
	batches, _ := collect(t, s)
	recv(t, batches)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestStreamBadRequestIsTypedError(t *testing.T) {
	f := newFakeServer(t, answer(400, `{"message":"Invalid request","errors":{"where":["At location 17: syntax error at or near \"x\""]}}`))
	s, _ := newStream(f.opts())
	err := s.Run(context.Background(), func(Batch) error { return nil })
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrBadRequest) || errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run = %v, want *Error 400", err)
	}
	if e.StatusCode != 400 || e.Message != "Invalid request" || e.Errors["where"] == nil {
		t.Errorf("error %+v", e)
	}
	if !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("message %q", err.Error())
	}

	f = newFakeServer(t, answer(401, `{"message":"Unauthorized - Invalid API secret"}`))
	s, _ = newStream(f.opts())
	if err := s.Run(context.Background(), func(Batch) error { return nil }); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
}

func TestStreamProtocolErrors(t *testing.T) {
	for name, st := range map[string]step{
		"no handle":  answer(200, "[]", "electric-offset", "0_0"),
		"bad offset": ok200("h", "12", "[]"),
		"not array":  ok200("h", "0_0", `{"a":1}`),
		"bad value":  ok200("h", "0_0", "["+insert(1, "a", "")+"]", "electric-schema", `{"title":{"type":"int4"}}`),
	} {
		f := newFakeServer(t, st)
		s, _ := newStream(f.opts())
		err := s.Run(context.Background(), func(Batch) error { return nil })
		if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s: Run = %v", name, err)
		}
	}
}

func TestStreamCallbackErrorStopsWithoutAdvancing(t *testing.T) {
	f := newFakeServer(t, ok200("h1", "0_0", "["+insert(1, "a", "")+"]"))
	s, _ := newStream(f.opts())
	boom := errors.New("boom")
	if err := s.Run(context.Background(), func(Batch) error { return boom }); err != boom {
		t.Fatalf("Run = %v", err)
	}
	if s.Offset() != "-1" {
		t.Errorf("offset advanced to %s past a refused batch", s.Offset())
	}
}

func TestStreamResumesFromSavedPosition(t *testing.T) {
	f := newFakeServer(t, ok200("h9", "30_0", "["+upToDate(30)+"]", "electric-cursor", "5"))
	opts := f.opts()
	opts.Handle, opts.Offset = "h9", "25_4"
	s, _ := newStream(opts)
	batches, _ := collect(t, s)
	recv(t, batches)
	waitReq(t, f, 1)
	expectQuery(t, f.query(0), "offset", "25_4", "handle", "h9", "live", "true")
	expectQuery(t, f.query(1), "offset", "30_0", "cursor", "5")
	if _, err := newStream(shapeOptions{URL: "http://x", Offset: "7"}); err == nil {
		t.Error("invalid offset accepted")
	}
}

// sse answers with an event stream: the events, then (hold) waits for the
// client to go away.
func sse(handle, offset string, hold bool, events ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("content-type", "text/event-stream")
		h.Set("electric-handle", handle)
		h.Set("electric-offset", offset)
		h.Set("electric-cursor", "99")
		w.WriteHeader(200)
		for _, e := range events {
			fmt.Fprint(w, e)
			w.(http.Flusher).Flush()
		}
		if hold {
			<-r.Context().Done()
		}
	}
}

func TestStreamSSE(t *testing.T) {
	live := func(id, lsn int) string {
		return insert(id, "x", fmt.Sprintf(`,"lsn":"%d","op_position":0,"txids":[800],"last":true`, lsn))
	}
	f := newFakeServer(t,
		ok200("h1", "0_inf", "["+upToDate(10)+"]", "electric-schema", testSchema),
		// The initial part ends at the header offset; then the connection
		// stays open with a keep-alive, a multi-line data field and CRLF.
		sse("h1", "40_2", true,
			"data: "+live(1, 40)+"\n\n", "data: "+upToDate(40)+"\n\n",
			": keep-alive\n\n",
			"data: "+live(2, 50)+"\r\n\r\n",
			"event: ignored\ndata: {\"headers\":\ndata: {\"control\":\"up-to-date\",\"global_last_seen_lsn\":\"50\"}}\n\n"),
	)
	opts := f.opts()
	opts.LiveSSE = true
	s, _ := newStream(opts)
	batches, _ := collect(t, s)
	recv(t, batches)
	b := recv(t, batches)
	if len(b.Events) != 2 || b.Offset != "40_2" || !b.UpToDate() {
		t.Errorf("first SSE batch %+v at %s", b.Events, b.Offset)
	}
	b = recv(t, batches)
	if len(b.Events) != 2 || b.Offset != "50_0" || b.Events[0].(*Change).Value["id"] != int32(2) {
		t.Errorf("second SSE batch %+v at %s", b.Events, b.Offset)
	}
	q := f.query(1)
	expectQuery(t, q, "live", "true", "live_sse", "true", "experimental_live_sse", "true", "offset", "0_inf")
	f.mu.Lock()
	accept := f.reqs[1].Header.Get("Accept")
	f.mu.Unlock()
	if accept != "text/event-stream" {
		t.Errorf("Accept %q", accept)
	}
}

func TestStreamSSEFallsBackToLongPoll(t *testing.T) {
	short := sse("h1", "0_inf", false)
	f := newFakeServer(t,
		ok200("h1", "0_inf", "["+upToDate(10)+"]"),
		short, short, short,
	)
	opts := f.opts()
	opts.LiveSSE = true
	s, _ := newStream(opts)
	collect(t, s)
	waitReq(t, f, 4)
	for i := 1; i <= 3; i++ {
		expectQuery(t, f.query(i), "live_sse", "true")
	}
	expectQuery(t, f.query(4), "live", "true", "live_sse", "")
}

func TestStreamSSEErrorAnswers(t *testing.T) {
	f := newFakeServer(t,
		ok200("h1", "0_inf", "["+upToDate(10)+"]"),
		answer(409, `[{"headers":{"control":"must-refetch"}}]`, "electric-handle", "h2"),
	)
	opts := f.opts()
	opts.LiveSSE = true
	s, _ := newStream(opts)
	batches, _ := collect(t, s)
	recv(t, batches)
	if b := recv(t, batches); b.Handle != "h2" {
		t.Errorf("want must-refetch, got %+v", b.Events)
	}
}

func TestStreamCancelLeavesNoGoroutines(t *testing.T) {
	for _, sseMode := range []bool{false, true} {
		f := newFakeServer(t,
			ok200("h1", "0_inf", "["+upToDate(10)+"]"),
			answer(503, "{}", "retry-after", "30"), // Run sleeps in backoff
			sse("h1", "0_inf", true),
		)
		tr := &http.Transport{}
		opts := f.opts()
		opts.HTTPClient = &http.Client{Transport: tr}
		opts.LiveSSE = sseMode
		before := runtime.NumGoroutine()
		s, _ := newStream(opts)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx, func(Batch) error { return nil }) }()
		waitReq(t, f, 1) // Run is asleep in the backoff
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
		// Also cancel while a request is held open.
		ctx, cancel = context.WithCancel(context.Background())
		go func() { done <- s.Run(ctx, func(Batch) error { return nil }) }()
		waitReq(t, f, 2)
		cancel()
		<-done
		tr.CloseIdleConnections()
		f.srv.Close()
		waitGoroutines(t, before)
	}
}

// waitGoroutines waits (briefly: connection goroutines of net/http end
// asynchronously after their connection closes) until no more goroutines
// run than before.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestStreamFastLoopGuard(t *testing.T) {
	var steps []step
	for range 30 {
		steps = append(steps, ok200("h1", "0_0", "["+insert(1, "a", "")+"]"))
	}
	f := newFakeServer(t, append([]step{ok200("h1", "0_0", "[]")}, steps...)...)
	s, _ := newStream(f.opts())
	err := s.Run(context.Background(), func(Batch) error { return nil })
	if !errors.Is(err, ErrFastLoop) {
		t.Fatalf("Run = %v, want ErrFastLoop", err)
	}
}

func TestRetryAfterAndBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Retry-After", "2")
	if d := retryAfter(h, now); d != 2*time.Second {
		t.Errorf("seconds: %v", d)
	}
	h.Set("Retry-After", now.Add(3*time.Second).Format(http.TimeFormat))
	if d := retryAfter(h, now); d != 3*time.Second {
		t.Errorf("date: %v", d)
	}
	b := fullJitter(100*time.Millisecond, 30*time.Second)
	for i := range 40 {
		ceil := min(30*time.Second, 100*time.Millisecond<<min(i, 20))
		if d := b.Next(); d < 0 || d > ceil {
			t.Fatalf("delay %d = %v, ceiling %v", i, d, ceil)
		}
	}
}

func TestStreamRetriesEmptyAnswer(t *testing.T) {
	// A server shutting down may end a held request with a bare 200.
	f := newFakeServer(t,
		ok200("h1", "0_inf", "["+upToDate(10)+"]"),
		func(w http.ResponseWriter, r *http.Request) {},
		ok200("h1", "20_0", "["+upToDate(20)+"]"),
	)
	s, _ := newStream(f.opts())
	batches, _ := collect(t, s)
	recv(t, batches)
	if b := recv(t, batches); b.Offset != "20_0" {
		t.Errorf("batch %+v", b)
	}
}
