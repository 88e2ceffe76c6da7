package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/backoff"
)

// DefaultMaxBatch is the default of WithMaxBatch.
const DefaultMaxBatch = 100

// writerOptions configure a Writer (Client.Writer builds them). URL and
// ClientID are required.
type writerOptions struct {
	// URL is volt's base URL ("http://localhost:3000") or the write
	// endpoint itself; a URL without a path gets "/v1/mutations". Query
	// parameters in URL are kept.
	URL string
	// ClientID names the client's queue on the server. Keep it stable
	// across restarts, together with the next seq (Seqs), and never use one
	// ClientID from two Writers at the same time.
	ClientID string
	// HTTPClient makes the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Headers are added to every request.
	Headers http.Header
	// Secret is sent as the secret parameter (volt serve -secret).
	Secret string
	// TokenSource, when set, gives the bearer token of every request
	// (see TokenSource for the refresh after a 401).
	TokenSource TokenSource
	// Seqs hands out sequence numbers. nil: NewMemorySeqStore(1), which
	// is only right for a ClientID used for the first time, or one that
	// is never reused after the process ends.
	Seqs SeqStore
	// MinBackoff and MaxBackoff bound the delays between retries (full
	// jitter, as for shapes): defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxBatch bounds the transactions sent in one request
	// (DefaultMaxBatch).
	MaxBatch int
	// SentBefore reports the seqs an earlier Writer (or process) may have
	// sent already: a replayed answer for one of them is its own earlier
	// result, not a reused seq (WithSentBefore).
	SentBefore func(seq int64) bool
	// NoLSNWait stops asking the server to wait for each accepted
	// transaction's exact commit LSN ("wait": "lsn"): answers come sooner,
	// with an upper bound of the commit LSN, which a quiet server may not
	// pass until another transaction commits. WriteAndAwait and Optimistic
	// use the LSN for shapes the write does not touch: with NoLSNWait, give
	// them a receipts shape (Client.ReceiptShape), whose changes carry the exact
	// commit LSN.
	NoLSNWait bool
	// OnError, if set, is called with every failed request: a network
	// error, an *Error for a 5xx or 429 answer, or a "retry" result (all
	// retried), and the errors that end a call: an *UnauthorizedError, an
	// *Error for a request refused as a whole, a protocol violation, a
	// TokenSource error. attempt counts the failures in a row, from 1;
	// retryIn is the wait before the next attempt, or NoRetry. It runs on
	// the goroutine that sends, holding the Writer's send slot, so it must
	// not block nor call the Writer; to give up, cancel the call's context
	// (the call then returns a *RetryError wrapping the last failure).
	OnError func(err error, attempt int, retryIn time.Duration)
}

// SeqStore hands out the sequence numbers of one ClientID. The server
// applies seq n only after n-1, and applies each seq once: a resent seq
// gets the stored result of its first delivery. So a seq must never be
// given to two different transactions: persist it before Reserve returns.
type SeqStore interface {
	// Reserve returns the seq of a new transaction and records, durably,
	// that it is taken: the next call returns the next number.
	Reserve(ctx context.Context) (int64, error)
	// SetNext makes next the seq the next Reserve returns. The Writer
	// calls it only when the server says which seq it expects
	// (out_of_order); see Writer.
	SetNext(ctx context.Context, next int64) error
}

// MemorySeqStore is a SeqStore in memory.
type MemorySeqStore struct {
	mu   sync.Mutex
	next int64
}

// NewMemorySeqStore returns a store whose first seq is next (1 for a new
// ClientID).
func NewMemorySeqStore(next int64) *MemorySeqStore {
	if next < 1 {
		next = 1
	}
	return &MemorySeqStore{next: next}
}

// Reserve implements SeqStore.
func (s *MemorySeqStore) Reserve(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.next
	s.next++
	return n, nil
}

// SetNext implements SeqStore.
func (s *MemorySeqStore) SetNext(_ context.Context, next int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = next
	return nil
}

// Next returns the seq the next Reserve returns: save it to resume.
func (s *MemorySeqStore) Next() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

var (
	// ErrRejected is matched (errors.Is) by a *RejectedError.
	ErrRejected = errors.New("transaction rejected")
	// ErrSeqReused is matched by a *SeqError whose seq was already used
	// on the server by another transaction.
	ErrSeqReused = errors.New("seq already used by another transaction")
	// ErrOutOfOrder is matched by a *SeqError whose seq is below the one
	// the server expects and has no stored result.
	ErrOutOfOrder = errors.New("seq out of order")
)

// UnauthorizedError is returned when the server answers 401 or 403. The
// request's transactions stay queued with their seqs (Pending lists them):
// fix the credentials (TokenSource) and call Flush or write again, and
// they are sent first. It matches ErrUnauthorized.
type UnauthorizedError struct {
	Err     *Error
	Pending []volt.ClientTransaction
}

func (e *UnauthorizedError) Error() string {
	return fmt.Sprintf("mutations: %v (%d transactions pending)", e.Err, len(e.Pending))
}

// Unwrap returns the HTTP error.
func (e *UnauthorizedError) Unwrap() error { return e.Err }

// RejectedError is the error of a transaction the server rejected, from
// Writer.Write, Writer.WriteAndAwait and Optimistic.Apply, which also
// return the result itself. Result.Code says why (volt.CodeConflict, …).
type RejectedError struct{ Result volt.MutationResult }

func (e *RejectedError) Error() string {
	msg := fmt.Sprintf("transaction %d rejected (%s)", e.Result.Seq, e.Result.Code)
	if e.Result.Message != "" {
		msg += ": " + e.Result.Message
	}
	return msg
}

// Is matches ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// SeqError fails a transaction whose outcome the Writer cannot know
// because the seq store and the server disagree. The transaction is no
// longer queued; it may have been applied (see Writer).
type SeqError struct {
	Seq int64
	// Expected is the server's expected_seq (out_of_order), or 0.
	Expected int64
	// Result is the server's answer for Seq.
	Result volt.MutationResult
	reused bool
}

func (e *SeqError) Error() string {
	if e.reused {
		return fmt.Sprintf("mutations: seq %d was already used on the server by another transaction (its stored result: %s); the seq store is behind", e.Seq, e.Result.Status)
	}
	return fmt.Sprintf("mutations: seq %d is out of order, the server expects %d and holds no result for it: it was applied long ago (receipt pruned) or the seq store is behind", e.Seq, e.Expected)
}

// Is matches ErrSeqReused or ErrOutOfOrder.
func (e *SeqError) Is(target error) bool {
	return (target == ErrSeqReused && e.reused) || (target == ErrOutOfOrder && !e.reused)
}

// Writer sends client transactions to volt's write endpoint
// (POST /v1/mutations), exactly once each, in order.
//
// Each transaction gets the next seq of the ClientID's queue (SeqStore)
// before it is sent, and keeps it until the server has decided it: every
// resend — after a network error, a lost response, a 5xx or 429 answer or
// a "retry" result — carries the same seq, so the server applies it at
// most once and a resend of an applied seq gets its stored result back.
// Retries wait with exponential backoff and full jitter, honouring
// Retry-After, and go on until the transaction is decided or the caller's
// context ends.
//
// Transactions that wait are sent together, oldest first, in one request
// (up to MaxBatch), so the server can reject later transactions that
// depend on a rejected one as "dependent". One request is in flight per
// Writer at a time.
//
// When a call's context ends first, its transaction stays queued: it may
// already be applied, and it is sent again, before any later transaction,
// by the next Write, WriteBatch or Flush.
//
// out_of_order: the server answers it when a seq is neither stored nor the
// next one, with expected_seq E. The Writer resynchronises only when that
// cannot lose or double a write, given that no other process sends with
// the same ClientID:
//   - seq > E: seqs E … seq-1 were reserved but never reached the server
//     (a process stopped between Reserve and sending, or a request was
//     refused as a whole with a 4xx, which applies nothing). Nobody will
//     send them, so the queued transactions are renumbered from E and
//     resent, and the SeqStore is moved back (SetNext).
//   - seq < E with no stored result: the seq was applied long ago and its
//     receipt pruned, or the SeqStore is behind the server. Either way
//     resending cannot tell, so such transactions fail with a *SeqError
//     (ErrOutOfOrder), and the store moves forward to E.
//
// A transaction sent for the first time whose answer is "replayed" also
// means the store is behind: it fails with a *SeqError (ErrSeqReused)
// instead of passing another transaction's result off as its own.
type Writer struct {
	opts     writerOptions
	endpoint string
	sem      chan struct{} // held by the goroutine that sends

	mu    sync.Mutex // guards queue and the seqs of its transactions
	queue []*wtx

	retry backoff.Backoff // under sem
	// lastErr is the last failed request's error while retrying, and
	// failures counts them; set under sem, read and written with mu held.
	lastErr  error
	failures int
}

// wtx is one queued transaction.
type wtx struct {
	seq    int64
	muts   []volt.Mutation
	sent   bool
	done   chan struct{}
	res    volt.MutationResult
	err    error
	onDone func(volt.MutationResult, error)
}

// newWriter checks opts and returns a Writer.
func newWriter(opts writerOptions) (*Writer, error) {
	if opts.URL == "" {
		return nil, errors.New("client: the write endpoint URL is required")
	}
	if opts.ClientID == "" || len(opts.ClientID) > 256 || strings.ContainsRune(opts.ClientID, 0) {
		return nil, errors.New("client: the client id must be 1 to 256 bytes without NUL")
	}
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = volt.MutationsPath
	}
	if opts.Secret != "" {
		q := u.Query()
		q.Set(volt.ParamSecret, opts.Secret)
		u.RawQuery = q.Encode()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Seqs == nil {
		opts.Seqs = NewMemorySeqStore(1)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	return &Writer{
		opts: opts, endpoint: u.String(), sem: make(chan struct{}, 1),
		retry: fullJitter(opts.MinBackoff, opts.MaxBackoff),
	}, nil
}

// ClientID returns the Writer's client id.
func (w *Writer) ClientID() string { return w.opts.ClientID }

// Write sends one client transaction and returns its result once the
// server has decided it. An accepted transaction returns its result (with
// its txid) and a nil error; a rejected one returns its result and a
// *RejectedError holding the same result (errors.Is ErrRejected). Other
// errors: the context's (a *RetryError while retrying), an
// *UnauthorizedError (the transaction stays queued), a *SeqError, an
// *Error for a request refused as a whole (4xx other than 401/403:
// nothing applied, the transaction is dropped), or an error from the
// SeqStore or TokenSource.
func (w *Writer) Write(ctx context.Context, muts []volt.Mutation) (volt.MutationResult, error) {
	t, err := w.enqueue(ctx, muts, nil)
	if err != nil {
		return volt.MutationResult{}, err
	}
	return rejection(w.await(ctx, t))
}

// rejection turns a rejected result into a *RejectedError.
func rejection(res volt.MutationResult, err error) (volt.MutationResult, error) {
	if err == nil && res.Status == volt.StatusRejected {
		return res, &RejectedError{Result: res}
	}
	return res, err
}

// WriteBatch sends several client transactions, in order, and returns one
// result per transaction, rejected ones included (a rejection is not an
// error here, so that the later transactions' results are returned too);
// on error, the results decided so far.
func (w *Writer) WriteBatch(ctx context.Context, txs [][]volt.Mutation) ([]volt.MutationResult, error) {
	ts := make([]*wtx, 0, len(txs))
	for _, muts := range txs {
		t, err := w.enqueue(ctx, muts, nil)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	var results []volt.MutationResult
	for _, t := range ts {
		res, err := w.await(ctx, t)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// Flush sends every queued transaction until all are decided.
func (w *Writer) Flush(ctx context.Context) error {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return w.stopped(ctx)
	}
	defer func() { <-w.sem }()
	return w.flush(ctx, nil)
}

// Pending returns the queued transactions: not yet decided by the server.
func (w *Writer) Pending() []volt.ClientTransaction {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pendingLocked(w.queue)
}

func (w *Writer) pendingLocked(ts []*wtx) []volt.ClientTransaction {
	out := make([]volt.ClientTransaction, len(ts))
	for i, t := range ts {
		out[i] = volt.ClientTransaction{Seq: t.seq, Mutations: t.muts}
	}
	return out
}

// enqueue reserves a seq for muts and queues it. onDone, if set, is called
// once the transaction is decided or dropped, on the goroutine that sent
// it, with no lock of the Writer held.
func (w *Writer) enqueue(ctx context.Context, muts []volt.Mutation, onDone func(volt.MutationResult, error)) (*wtx, error) {
	if len(muts) == 0 {
		return nil, errors.New("client: a transaction needs at least one mutation")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, err := w.opts.Seqs.Reserve(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: reserve seq: %w", err)
	}
	t := &wtx{seq: seq, muts: muts, done: make(chan struct{}), onDone: onDone}
	w.queue = append(w.queue, t)
	return t, nil
}

// await sends until t is decided or ctx ends.
func (w *Writer) await(ctx context.Context, t *wtx) (volt.MutationResult, error) {
	for {
		select {
		case <-t.done:
			return t.res, t.err
		default:
		}
		select {
		case <-t.done:
			return t.res, t.err
		case <-ctx.Done():
			return volt.MutationResult{}, w.stopped(ctx)
		case w.sem <- struct{}{}:
		}
		err := w.flush(ctx, t)
		<-w.sem
		select {
		case <-t.done:
			return t.res, t.err
		default:
		}
		if err != nil {
			return volt.MutationResult{}, err
		}
	}
}

// finish decides t and removes it from the queue (w.mu held); the caller
// runs the returned callbacks after unlocking.
func (w *Writer) finishLocked(t *wtx, res volt.MutationResult, err error, calls *[]func()) {
	for i, q := range w.queue {
		if q == t {
			w.queue = append(w.queue[:i:i], w.queue[i+1:]...)
			break
		}
	}
	t.res, t.err = res, err
	close(t.done)
	if t.onDone != nil {
		*calls = append(*calls, func() { t.onDone(res, err) })
	}
}

func runAll(calls []func()) {
	for _, f := range calls {
		f()
	}
}

// flush sends the queue, oldest first, until until is decided (or, for
// nil, the queue is empty); w.sem held.
func (w *Writer) flush(ctx context.Context, until *wtx) error {
	maxBatch := w.opts.MaxBatch
	outOfOrder := 0
	for {
		if until != nil {
			select {
			case <-until.done:
				return nil
			default:
			}
		}
		w.mu.Lock()
		batch := append([]*wtx(nil), w.queue[:min(len(w.queue), maxBatch)]...)
		req := volt.MutationRequest{ClientID: w.opts.ClientID, Transactions: w.pendingLocked(batch)}
		if !w.opts.NoLSNWait {
			req.Wait = volt.WaitLSN
		}
		firstSend := make([]bool, len(batch))
		for i, t := range batch {
			firstSend[i] = !t.sent
			t.sent = true
		}
		w.mu.Unlock()
		if len(batch) == 0 {
			return nil
		}
		status, header, body, err := w.post(ctx, &req)
		if err != nil {
			if ctx.Err() != nil {
				return w.stopped(ctx)
			}
			if errors.Is(err, errToken) {
				return w.gaveUp(err)
			}
			if backoff.Sleep(ctx, w.failed(err, 0)) != nil {
				return w.stopped(ctx)
			}
			continue
		}
		switch {
		case status == http.StatusOK:
		case status >= 500 || status == http.StatusTooManyRequests:
			if backoff.Sleep(ctx, w.failed(newError(status, body), retryAfter(header, time.Now()))) != nil {
				return w.stopped(ctx)
			}
			continue
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			w.mu.Lock()
			pending := w.pendingLocked(w.queue)
			w.mu.Unlock()
			return w.gaveUp(&UnauthorizedError{Err: newError(status, body), Pending: pending})
		case status == http.StatusRequestEntityTooLarge && len(batch) > 1:
			maxBatch = max(1, len(batch)/2)
			continue
		default: // refused as a whole: nothing applied, and resending cannot help
			herr := newError(status, body)
			w.gaveUp(herr)
			var calls []func()
			w.mu.Lock()
			for _, t := range batch {
				w.finishLocked(t, volt.MutationResult{}, herr, &calls)
			}
			w.mu.Unlock()
			runAll(calls)
			continue
		}
		var resp volt.MutationResponse
		if err := json.Unmarshal(body, &resp); err != nil || len(resp.Results) != len(batch) {
			return w.gaveUp(protocolErrorf("mutations answer: %d results for %d transactions (%v)", len(resp.Results), len(batch), err))
		}
		retry, resync, err := w.settle(ctx, batch, firstSend, resp.Results)
		if err != nil {
			return w.gaveUp(err)
		}
		switch {
		case resync:
			outOfOrder++
			if outOfOrder > 3 { // someone else sends with our client id
				if w.retry.Wait(ctx) != nil {
					return w.stopped(ctx)
				}
			}
		case retry != nil:
			if backoff.Sleep(ctx, w.failed(retry, 0)) != nil {
				return w.stopped(ctx)
			}
		default:
			w.retry.Reset()
			w.mu.Lock()
			w.lastErr, w.failures = nil, 0
			w.mu.Unlock()
			outOfOrder = 0
		}
	}
}

// settle applies the results of one request. retry, when not nil, tells
// why the request must be sent again.
func (w *Writer) settle(ctx context.Context, batch []*wtx, firstSend []bool, results []volt.MutationResult) (retry error, resync bool, err error) {
	var calls []func()
	defer func() { runAll(calls) }()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, r := range results {
		t := batch[i]
		if r.Seq != t.seq {
			return nil, false, protocolErrorf("mutations answer: result %d has seq %d, sent %d", i, r.Seq, t.seq)
		}
		switch {
		case r.Code == volt.CodeOutOfOrder && r.Status != volt.StatusAccepted:
			// volt answers it with status rejected, but nothing was
			// decided: resynchronise and send again.
			if r.ExpectedSeq < 1 {
				return retryResult(r), false, nil
			}
			return nil, true, w.resyncLocked(ctx, r, &calls)
		case r.Status == volt.StatusAccepted || r.Status == volt.StatusRejected:
			if r.Replayed && firstSend[i] && (w.opts.SentBefore == nil || !w.opts.SentBefore(t.seq)) {
				w.finishLocked(t, volt.MutationResult{}, &SeqError{Seq: t.seq, Result: r, reused: true}, &calls)
				continue
			}
			w.finishLocked(t, r, nil, &calls)
		default: // retry, or a status this client does not know
			return retryResult(r), false, nil
		}
	}
	return nil, false, nil
}

// retryResult is the error of a result that asks to send again.
func retryResult(r volt.MutationResult) error {
	msg := fmt.Sprintf("mutations: transaction %d: %s", r.Seq, r.Status)
	if r.Code != "" {
		msg += " (" + r.Code + ")"
	}
	if r.Message != "" {
		msg += ": " + r.Message
	}
	return errors.New(msg)
}

// failed records a failed request (w.sem held), tells OnError and returns
// the wait before the next one, at least floor.
func (w *Writer) failed(err error, floor time.Duration) time.Duration {
	wait := max(w.retry.Next(), floor)
	w.mu.Lock()
	w.lastErr, w.failures = err, w.retry.Attempts()
	w.mu.Unlock()
	if w.opts.OnError != nil {
		w.opts.OnError(err, w.retry.Attempts(), wait)
	}
	return wait
}

// gaveUp tells OnError about err, which is not retried (w.sem held), and
// returns it. The failures before it are no longer what a call waits for.
func (w *Writer) gaveUp(err error) error {
	w.mu.Lock()
	w.lastErr, w.failures = nil, 0
	w.mu.Unlock()
	if w.opts.OnError != nil {
		w.opts.OnError(err, w.retry.Attempts()+1, NoRetry)
	}
	return err
}

// stopped is what a call returns when ctx has ended: ctx's cause, wrapped
// with the last failed request's error while retrying.
func (w *Writer) stopped(ctx context.Context) error {
	cause := context.Cause(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastErr == nil {
		return cause
	}
	return &RetryError{Ctx: cause, Last: w.lastErr, Attempts: w.failures}
}

// resyncLocked handles out_of_order for the head of the queue (w.mu held).
func (w *Writer) resyncLocked(ctx context.Context, r volt.MutationResult, calls *[]func()) error {
	expected := r.ExpectedSeq
	for len(w.queue) > 0 && w.queue[0].seq < expected {
		t := w.queue[0]
		w.finishLocked(t, volt.MutationResult{}, &SeqError{Seq: t.seq, Expected: expected, Result: r}, calls)
	}
	next := expected
	if len(w.queue) > 0 && w.queue[0].seq > expected {
		for _, t := range w.queue {
			t.seq, t.sent = next, false
			next++
		}
	} else if len(w.queue) > 0 {
		next = w.queue[len(w.queue)-1].seq + 1
	}
	if err := w.opts.Seqs.SetNext(ctx, next); err != nil {
		return fmt.Errorf("client: set next seq: %w", err)
	}
	return nil
}

// post makes one request and reads the whole answer.
func (w *Writer) post(ctx context.Context, body *volt.MutationRequest) (int, http.Header, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, nil, err
	}
	a := authorizer{httpClient: w.opts.HTTPClient, headers: w.opts.Headers, tokens: w.opts.TokenSource}
	resp, err := a.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.endpoint, bytes.NewReader(b))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	})
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, data, nil
}
