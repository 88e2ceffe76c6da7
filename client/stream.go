package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/backoff"
)

// Batch is what one response (or, with SSE, everything up to an
// up-to-date message) delivered, in order.
type Batch struct {
	Events []Event
	// Handle and Offset are the stream's position after this batch: save
	// them with the batch's effects to resume later (the Resume
	// option).
	Handle, Offset string
}

// UpToDate reports whether the batch ends at the head of the shape log.
func (b Batch) UpToDate() bool {
	if len(b.Events) == 0 {
		return false
	}
	_, ok := b.Events[len(b.Events)-1].(*UpToDate)
	return ok
}

// Stream follows one shape. Create it with Client.Stream and call Run.
type Stream struct {
	opts shapeOptions
	base *url.URL

	running atomic.Bool

	mu      sync.Mutex
	handle  string
	offset  string
	cursor  string
	schema  Schema
	live    bool   // an up-to-date was seen: requests are live
	expired string // the handle a 409 replaced
	// failure is the last failed attempt's error while retrying, and
	// failures counts the failed attempts in a row.
	failure  error
	failures int

	// Used by Run's goroutine only.
	retry    backoff.Backoff
	loop     loopGuard
	sseOff   bool // fell back to long polling
	sseShort int  // short SSE connections in a row
	sseWait  backoff.Backoff
}

// newStream checks opts and returns a stream positioned at opts.Handle and
// opts.Offset (or the beginning).
func newStream(opts shapeOptions) (*Stream, error) {
	base, err := opts.validate()
	if err != nil {
		return nil, err
	}
	s := &Stream{opts: opts, base: base, handle: opts.Handle, offset: opts.Offset}
	s.live = s.offset != "-1" && s.offset != "now"
	s.retry = fullJitter(opts.MinBackoff, opts.MaxBackoff)
	s.sseWait = fullJitter(100*time.Millisecond, 5*time.Second)
	s.loop.wait = fullJitter(100*time.Millisecond, 5*time.Second)
	return s, nil
}

// Handle returns the shape handle after the last batch that Run's callback
// accepted ("" before the first response).
func (s *Stream) Handle() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handle
}

// Offset returns the offset after the last batch that Run's callback
// accepted.
func (s *Stream) Offset() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset
}

// Schema returns the columns of the shape, from the last electric-schema
// header (nil before the first response).
func (s *Stream) Schema() Schema {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.schema
}

// Run follows the shape until ctx ends or an error that retrying cannot
// fix, calling fn with each batch, in order, on the calling goroutine: the
// stream waits for fn, so a slow fn slows the stream and nothing is
// dropped. A 409 is delivered as a batch holding only a *MustRefetch, after
// which the stream starts again from the beginning.
//
// Run returns ctx's error (or cause) when ctx ends, fn's error unchanged
// when fn fails (the batch then does not count as delivered), an *Error
// for a 4xx answer other than 409, or an error wrapping ErrProtocol,
// ErrInvalidValue or ErrFastLoop. Network errors, 5xx and 429 answers are
// retried forever (WithOnError sees each); when ctx ends while
// retrying them, Run returns a *RetryError wrapping both ctx's error and
// the last attempt's. Run starts no goroutine that outlives it; it must
// not be called again while it runs.
func (s *Stream) Run(ctx context.Context, fn func(Batch) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("client: Stream.Run is already running")
	}
	defer s.running.Store(false)
	s.setFailure(nil)
	fnFailed := false
	deliver := func(b Batch) error {
		err := fn(b)
		fnFailed = err != nil
		return err
	}
	for {
		if ctx.Err() != nil {
			return s.stopped(ctx)
		}
		var err error
		if s.isLive() && s.opts.LiveSSE && !s.sseOff {
			err = s.followSSE(ctx, deliver)
		} else {
			err = s.poll(ctx, deliver)
		}
		if err != nil {
			if ctx.Err() != nil {
				return s.stopped(ctx)
			}
			if !fnFailed && s.opts.OnError != nil {
				s.opts.OnError(err, s.retry.Attempts()+1, NoRetry)
			}
			return err
		}
	}
}

// stopped is what Run returns when ctx has ended: ctx's cause, wrapped
// with the last failed attempt's error while retrying.
func (s *Stream) stopped(ctx context.Context) error {
	return s.retryError(context.Cause(ctx))
}

// retryError returns cause, wrapped in a *RetryError with the last failed
// attempt's error while the stream is retrying.
func (s *Stream) retryError(cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure == nil {
		return cause
	}
	return &RetryError{Ctx: cause, Last: s.failure, Attempts: s.failures}
}

func (s *Stream) setFailure(err error) {
	s.mu.Lock()
	s.failure, s.failures = err, s.retry.Attempts()
	s.mu.Unlock()
}

// failed records a failed attempt, tells OnError and returns the wait
// before the next one, at least floor.
func (s *Stream) failed(err error, floor time.Duration) time.Duration {
	wait := max(s.retry.Next(), floor)
	s.setFailure(err)
	if s.opts.OnError != nil {
		s.opts.OnError(err, s.retry.Attempts(), wait)
	}
	return wait
}

// succeeded ends a run of failed attempts.
func (s *Stream) succeeded() {
	s.retry.Reset()
	s.setFailure(nil)
}

func (s *Stream) isLive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// requestURL builds the URL of the next request.
func (s *Stream) requestURL(live, sse bool) string {
	u := *s.base
	q := u.Query()
	s.opts.shapeQuery(q)
	s.mu.Lock()
	q.Set(volt.ParamOffset, s.offset)
	if s.handle != "" {
		q.Set(volt.ParamHandle, s.handle)
	}
	if s.expired != "" {
		q.Set(volt.ParamExpiredHandle, s.expired)
	}
	if live {
		q.Set(volt.ParamLive, "true")
		q.Set(volt.ParamCursor, s.cursor)
	}
	s.mu.Unlock()
	if sse {
		q.Set(volt.ParamLiveSSE, "true")
		q.Set(volt.ParamExperimentalLiveSSE, "true")
	}
	u.RawQuery = q.Encode() // sorted, as CDNs like it
	return u.String()
}

// send makes one request.
func (s *Stream) send(ctx context.Context, rawURL string, sse bool) (*http.Response, error) {
	a := authorizer{httpClient: s.opts.HTTPClient, headers: s.opts.Headers, tokens: s.opts.tokens}
	return a.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err == nil && sse {
			req.Header.Set("Accept", "text/event-stream")
		}
		return req, err
	})
}

// retryWait classifies a failed attempt: it returns how long to wait
// before retrying, or the error to give up with.
func (s *Stream) retryWait(ctx context.Context, status int, h http.Header, body []byte, err error) (time.Duration, error) {
	if err != nil {
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		if errors.Is(err, errToken) {
			return 0, err
		}
		return s.failed(err, 0), nil
	}
	if status >= 500 || status == http.StatusTooManyRequests {
		return s.failed(newError(status, body), retryAfter(h, time.Now())), nil
	}
	return 0, newError(status, body)
}

// errEmptyAnswer stands for a 200 without body and without electric
// headers: what a server that is shutting down may send for a held
// request. It is retried like a network error.
var errEmptyAnswer = errors.New("empty answer without electric headers")

func emptyAnswer(status int, h http.Header, body []byte) bool {
	return status == http.StatusOK && len(body) == 0 && h.Get(volt.HeaderOffset) == ""
}

// ok reports whether a status ends the retry loop with a usable answer.
func ok(status int) bool {
	return status == http.StatusOK || status == http.StatusNoContent || status == http.StatusConflict
}

// poll makes one long-poll (or non-live) exchange, with retries, and
// delivers its batch.
func (s *Stream) poll(ctx context.Context, fn func(Batch) error) error {
	live := s.isLive()
	for {
		rawURL := s.requestURL(live, false)
		status, header, body, err := s.fetch(ctx, rawURL, live)
		if err == nil && emptyAnswer(status, header, body) {
			err = errEmptyAnswer
		}
		if err == nil && ok(status) {
			s.succeeded()
			return s.handleAnswer(ctx, status, header, body, live, fn)
		}
		wait, err := s.retryWait(ctx, status, header, body, err)
		if err != nil {
			return err
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// fetch makes one request and reads its body; a live request is bounded by
// LiveTimeout.
func (s *Stream) fetch(ctx context.Context, rawURL string, live bool) (int, http.Header, []byte, error) {
	if live {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.LiveTimeout)
		defer cancel()
	}
	resp, err := s.send(ctx, rawURL, false)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, body, nil
}

// handleAnswer processes a 200, 204 or 409 answer.
func (s *Stream) handleAnswer(ctx context.Context, status int, h http.Header, body []byte, live bool, fn func(Batch) error) error {
	if status == http.StatusConflict {
		return s.refetch(h, fn)
	}
	if status == http.StatusNoContent { // old servers' "up to date"
		s.mu.Lock()
		s.live = true
		s.mu.Unlock()
		return fn(Batch{Events: []Event{&UpToDate{}}, Handle: s.Handle(), Offset: s.Offset()})
	}
	handle, offset, err := positionHeaders(h)
	if err != nil {
		return err
	}
	schema, err := s.adoptSchema(h)
	if err != nil {
		return err
	}
	events, err := decodeBody(body, schema)
	if err != nil {
		return err
	}
	b := Batch{Events: events, Handle: handle, Offset: offset}
	if !live {
		if err := s.checkProgress(ctx, offset, b.UpToDate()); err != nil {
			return err
		}
	}
	if len(events) > 0 {
		if err := fn(b); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.handle, s.offset = handle, offset
	if c := h.Get(volt.HeaderCursor); c != "" {
		s.cursor = c
	}
	s.live = s.live || b.UpToDate()
	s.mu.Unlock()
	return nil
}

// checkProgress slows down, then fails, a stream whose non-live requests
// do not advance.
func (s *Stream) checkProgress(ctx context.Context, offset string, upToDate bool) error {
	if upToDate || offset != s.Offset() {
		s.loop.progress()
		return nil
	}
	wait, err := s.loop.noProgress(time.Now())
	if err != nil {
		return err
	}
	return backoff.Sleep(ctx, wait)
}

// positionHeaders returns the electric-handle and electric-offset headers
// every 200 answer carries.
func positionHeaders(h http.Header) (handle, offset string, err error) {
	handle, offset = h.Get(volt.HeaderHandle), h.Get(volt.HeaderOffset)
	if handle == "" || offset == "" {
		return "", "", protocolErrorf("answer without electric-handle or electric-offset header")
	}
	if _, err := volt.ParseOffset(offset); err != nil {
		return "", "", protocolErrorf("electric-offset %q", offset)
	}
	return handle, offset, nil
}

// adoptSchema takes the schema from h when it has one and returns the
// current schema.
func (s *Stream) adoptSchema(h http.Header) (Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := h.Get(volt.HeaderSchema); v != "" {
		schema, err := ParseSchema(v)
		if err != nil {
			return nil, err
		}
		s.schema = schema
	}
	return s.schema, nil
}

// refetch answers a 409: start again from -1 with the new handle, after
// telling fn.
func (s *Stream) refetch(h http.Header, fn func(Batch) error) error {
	newHandle := h.Get(volt.HeaderHandle)
	s.mu.Lock()
	if s.handle != "" && s.handle != newHandle {
		s.expired = s.handle
	}
	s.handle, s.offset, s.cursor, s.schema, s.live = newHandle, "-1", "", nil, false
	s.mu.Unlock()
	s.loop.progress()
	b := Batch{Events: []Event{&MustRefetch{Handle: newHandle}}, Handle: newHandle, Offset: "-1"}
	return fn(b)
}

// offsetMax returns the later of two offsets (a when b does not parse).
func offsetMax(a, b string) string {
	oa, errA := volt.ParseOffset(a)
	ob, errB := volt.ParseOffset(b)
	if errB != nil || (errA == nil && !oa.Less(ob)) {
		return a
	}
	return b
}

func lsnOffset(lsn uint64) string { return strconv.FormatUint(lsn, 10) + "_0" }
