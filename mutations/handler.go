package mutations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

// DefaultMaxBodyBytes bounds a request body unless Options.MaxBodyBytes is set.
const DefaultMaxBodyBytes = 1 << 20

// DefaultMaxTransactions and DefaultMaxMutations bound a request unless
// Options.MaxTransactions and Options.MaxMutations are set.
const (
	DefaultMaxTransactions = 100
	DefaultMaxMutations    = 1000
)

// DefaultLSNWait bounds the wait for a request's commit LSNs, when the
// request asks for them ("wait": "lsn"), unless Options.LSNWait is set.
const DefaultLSNWait = 50 * time.Millisecond

// DefaultClientWait is how long a request waits for another request of the
// same client_id to finish unless Options.ClientWait is set.
const DefaultClientWait = 2 * time.Second

// maxClientIDBytes bounds client_id.
const maxClientIDBytes = 256

// NamedFunc is a named mutation. It runs inside the client transaction's
// Postgres transaction, together with the receipt; it must not commit or
// roll back tx. Returning a *Rejection rejects the transaction with its
// code; any other error rejects it as invalid, or asks the client to retry
// when it is a transient Postgres or network failure.
type NamedFunc func(ctx context.Context, tx pgx.Tx, args json.RawMessage) error

// CheckFunc authorises one row mutation against its rows, inside its
// transaction. It is called:
//   - for an update or delete, with the locked row before the write
//     (oldRow set, newRow nil), so that nothing runs on a row the caller may
//     not touch; and with oldRow and newRow both nil when there is no row
//     with the key (return a rejection to answer exactly as for a row the
//     caller may not write, nil to answer conflict);
//   - for an insert or update, after the write with the rows as Postgres
//     holds them (oldRow nil for inserts).
//
// Return a *Rejection (normally volt.CodeForbidden) to reject the client
// transaction.
type CheckFunc func(ctx context.Context, principal any, m volt.Mutation, oldRow, newRow map[string]any) error

// AllowFunc decides, before any statement of the client transaction runs,
// whether the principal may apply m at all: its table, operation and
// columns. Return a *Rejection to reject the client transaction.
type AllowFunc func(ctx context.Context, principal any, m volt.Mutation) error

// Options configure a Handler. The zero value is usable and INSECURE: with
// no Check, every table in schema public is writable by anyone who can
// reach the endpoint.
type Options struct {
	// Checked names the tables ("todos" for public.todos, or
	// "schema.table") whose updates and deletes must match their original
	// values; the others are last-write-wins.
	Checked map[string]bool
	// Authorize, when set, authenticates each request. An error wrapping
	// ErrUnauthorized answers 401, one wrapping ErrForbidden 403, and any
	// other 503; nothing is applied or recorded. The principal is passed to
	// Allow, Check and ClientAllowed and is available to named mutations via
	// Principal.
	Authorize func(ctx context.Context, r *http.Request) (principal any, err error)
	// ClientAllowed, when set, decides whether the principal may use the
	// request's client_id; an error answers 403 with its message and
	// applies, records and reveals nothing.
	ClientAllowed func(ctx context.Context, principal any, clientID string) error
	// Allow, when set, decides every row mutation's table, operation and
	// columns before any statement runs; schema public is then no longer
	// writable by default.
	Allow AllowFunc
	// Check, when set, authorises every row mutation against its rows;
	// schema public is then no longer writable by default (Allow and Check
	// decide every table).
	Check CheckFunc
	// CheckUsesTx, when set, tells which row mutations' Check queries
	// their transaction (CheckTx); those are not pipelined.
	CheckUsesTx func(m volt.Mutation) bool
	// MaxBodyBytes bounds the request body (413 above it); default 1 MiB.
	MaxBodyBytes int64
	// MaxTransactions and MaxMutations bound the transactions and the
	// mutations (of all transactions) of one request, 413 above them;
	// defaults DefaultMaxTransactions and DefaultMaxMutations.
	MaxTransactions int
	MaxMutations    int
	// ClientWait is how long a request waits while another request of the
	// same client_id is being applied before it is answered 429; default
	// DefaultClientWait.
	ClientWait time.Duration
	// LSN finds the commit LSN reported for an accepted transaction, for
	// requests that ask for it ("wait": "lsn"); default UpperBoundLSN.
	LSN LSNResolver
	// LSNWait bounds how long a request that asks for exact commit LSNs
	// waits for LSN to resolve them (after which they are upper bounds);
	// default DefaultLSNWait.
	LSNWait time.Duration
	Logger  *slog.Logger
	// Metrics, when set (NewMetrics), counts the results.
	Metrics *Metrics
}

// Handler serves POST /v1/mutations.
type Handler struct {
	pool    *pgxpool.Pool
	opts    Options
	catalog *catalog

	mu    sync.RWMutex
	named map[string]NamedFunc

	clients clientLocks
	commits committer // batches, at most one per connection of pool

	// beforeCommit, set by tests, runs in each batch's transaction before
	// its COMMIT.
	beforeCommit func(ctx context.Context, tx pgx.Tx)
}

// New returns a Handler writing through pool. Run Migrate first.
func New(pool *pgxpool.Pool, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxTransactions <= 0 {
		opts.MaxTransactions = DefaultMaxTransactions
	}
	if opts.MaxMutations <= 0 {
		opts.MaxMutations = DefaultMaxMutations
	}
	if opts.ClientWait <= 0 {
		opts.ClientWait = DefaultClientWait
	}
	if opts.LSN == nil {
		opts.LSN = UpperBoundLSN{}
	}
	if opts.LSNWait <= 0 {
		opts.LSNWait = DefaultLSNWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{pool: pool, opts: opts, catalog: newCatalog(), named: map[string]NamedFunc{}, clients: clientLocks{m: map[string]*clientLock{}}}
	if pool != nil {
		h.commits.max = int(pool.Config().MaxConns)
	}
	return h
}

// Register adds (or replaces) the named mutation name.
func (h *Handler) Register(name string, fn NamedFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.named[name] = fn
}

func (h *Handler) namedFunc(name string) NamedFunc {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.named[name]
}

// ServeHTTP answers POST with a MutationResponse (200) or a MutationError
// (400, 401, 403, 405, 413, 415, 429, or 503 when authorisation is
// unavailable); it never answers 5xx for a client's input.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("allow", "POST, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, volt.MutationError{Message: "method not allowed: use POST"})
		return
	}
	// A browser sends text/plain, form and multipart bodies cross-origin
	// without a preflight: only JSON is accepted.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, volt.MutationError{
			Message: fmt.Sprintf("unsupported content type %q: send Content-Type: application/json", clean(r.Header.Get("Content-Type"))),
			Code:    "unsupported_media_type",
		})
		return
	}
	var principal any
	if h.opts.Authorize != nil {
		p, err := h.opts.Authorize(r.Context(), r)
		switch {
		case errors.Is(err, ErrUnauthorized):
			writeJSON(w, http.StatusUnauthorized, volt.MutationError{Message: clean(err.Error()), Code: volt.CodeUnauthorized})
			return
		case errors.Is(err, ErrForbidden):
			writeJSON(w, http.StatusForbidden, volt.MutationError{Message: clean(err.Error()), Code: volt.CodeForbidden})
			return
		case err != nil:
			h.opts.Logger.Warn("mutations: authorize failed", "err", err)
			w.Header().Set("retry-after", "1")
			writeJSON(w, http.StatusServiceUnavailable, volt.MutationError{Message: "authorisation is unavailable; try again"})
			return
		}
		principal = p
	}
	req, status, mErr := h.readRequest(w, r)
	if mErr != nil {
		writeJSON(w, status, mErr)
		return
	}
	if h.opts.ClientAllowed != nil {
		if err := h.opts.ClientAllowed(r.Context(), principal, req.ClientID); err != nil {
			writeJSON(w, http.StatusForbidden, volt.MutationError{Message: clean(err.Error()), Code: volt.CodeForbidden})
			return
		}
	}
	release, err := h.clients.lock(r.Context(), req.ClientID, h.opts.ClientWait)
	if err != nil {
		w.Header().Set("retry-after", "1")
		writeJSON(w, http.StatusTooManyRequests, volt.MutationError{
			Message: "another request of this client_id is being applied; send this one when it has been answered",
			Code:    "client_busy",
		})
		return
	}
	defer release()
	results := h.Apply(r.Context(), principal, req)
	h.opts.Metrics.count(results)
	writeJSON(w, http.StatusOK, volt.MutationResponse{Results: results})
}

// readRequest decodes and validates the body; on failure it returns the
// status and the error body.
func (h *Handler) readRequest(w http.ResponseWriter, r *http.Request) (*volt.MutationRequest, int, *volt.MutationError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, http.StatusRequestEntityTooLarge, &volt.MutationError{Message: fmt.Sprintf("body larger than %d bytes", h.opts.MaxBodyBytes)}
	}
	if err != nil {
		return nil, http.StatusBadRequest, &volt.MutationError{Message: "cannot read body: " + clean(err.Error())}
	}
	req, err := decodeRequest(body)
	if err != nil {
		return nil, http.StatusBadRequest, invalidRequest("body", err.Error())
	}
	if field, msg := validateRequest(req); field != "" {
		return nil, http.StatusBadRequest, invalidRequest(field, msg)
	}
	if field, msg := h.checkLimits(req); field != "" {
		e := invalidRequest(field, msg)
		e.Message = "Request too large"
		return nil, http.StatusRequestEntityTooLarge, e
	}
	return req, 0, nil
}

// checkLimits bounds the transactions and mutations of a request.
func (h *Handler) checkLimits(req *volt.MutationRequest) (field, msg string) {
	if n := len(req.Transactions); n > h.opts.MaxTransactions {
		return "transactions", fmt.Sprintf("%d transactions; at most %d per request", n, h.opts.MaxTransactions)
	}
	n := 0
	for _, t := range req.Transactions {
		n += len(t.Mutations)
	}
	if n > h.opts.MaxMutations {
		return "transactions", fmt.Sprintf("%d mutations; at most %d per request", n, h.opts.MaxMutations)
	}
	return "", ""
}

func invalidRequest(field, msg string) *volt.MutationError {
	return &volt.MutationError{Message: "Invalid request", Errors: map[string][]string{field: {clean(msg)}}}
}

// decodeRequest parses exactly one JSON object, keeping numbers exact.
func decodeRequest(body []byte) (*volt.MutationRequest, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, errors.New("empty body")
	}
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.UseNumber()
	var req volt.MutationRequest
	if err := d.Decode(&req); err != nil {
		return nil, fmt.Errorf("malformed JSON: %v", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("malformed JSON: trailing data after the object")
	}
	if err := checkKeys(body); err != nil {
		return nil, err
	}
	dropEmpty(&req)
	return &req, nil
}

// validateRequest checks what makes the request as a whole unusable.
func validateRequest(req *volt.MutationRequest) (field, msg string) {
	switch {
	case req.ClientID == "":
		return "client_id", "can't be blank"
	case len(req.ClientID) > maxClientIDBytes:
		return "client_id", fmt.Sprintf("longer than %d bytes", maxClientIDBytes)
	case !utf8.ValidString(req.ClientID) || strings.ContainsRune(req.ClientID, 0) || strings.ContainsRune(req.ClientID, utf8.RuneError):
		return "client_id", "must be valid UTF-8 without NUL"
	case len(req.Transactions) == 0:
		return "transactions", "can't be empty"
	case req.Wait != "" && req.Wait != volt.WaitLSN:
		return "wait", fmt.Sprintf("unknown wait %q: the only one is %q (the exact commit LSN)", req.Wait, volt.WaitLSN)
	}
	var prev int64
	for i, t := range req.Transactions {
		if t.Seq < 1 {
			return "transactions", fmt.Sprintf("transaction %d: seq must be 1 or more", i)
		}
		if t.Seq <= prev {
			return "transactions", fmt.Sprintf("transaction %d: seq %d does not follow %d (seqs must increase)", i, t.Seq, prev)
		}
		prev = t.Seq
	}
	return "", ""
}

// clientLocks lets one request per client_id apply at a time.
type clientLocks struct {
	mu sync.Mutex
	m  map[string]*clientLock
}

type clientLock struct {
	ch   chan struct{} // holds a token while a request applies
	refs int           // requests holding or waiting for it
}

// lock waits up to wait for the client's lock and returns its release.
func (l *clientLocks) lock(ctx context.Context, clientID string, wait time.Duration) (func(), error) {
	l.mu.Lock()
	c := l.m[clientID]
	if c == nil {
		c = &clientLock{ch: make(chan struct{}, 1)}
		l.m[clientID] = c
	}
	c.refs++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		if c.refs--; c.refs == 0 {
			delete(l.m, clientID)
		}
		l.mu.Unlock()
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case c.ch <- struct{}{}:
		return func() { <-c.ch; done() }, nil
	case <-timer.C:
		done()
		return nil, errors.New("client busy")
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"cannot encode the response"}`)
	}
	w.Header().Set("content-type", "application/json; charset=utf-8")
	w.Header().Set("cache-control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
