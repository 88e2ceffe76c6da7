package mutations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

// DefaultMaxBodyBytes bounds a request body unless Options.MaxBodyBytes is set.
const DefaultMaxBodyBytes = 1 << 20

// maxClientIDBytes bounds client_id.
const maxClientIDBytes = 256

// NamedFunc is a named mutation. It runs inside the client transaction's
// Postgres transaction, together with the receipt; it must not commit or
// roll back tx. Returning a *Rejection rejects the transaction with its
// code; any other error rejects it as invalid, or asks the client to retry
// when it is a transient Postgres or network failure.
type NamedFunc func(ctx context.Context, tx pgx.Tx, args json.RawMessage) error

// CheckFunc authorises one applied row mutation inside its transaction.
// oldRow is nil for inserts, newRow nil for deletes. Return a *Rejection
// (normally volt.CodeForbidden) to reject the client transaction.
type CheckFunc func(ctx context.Context, principal any, m volt.Mutation, oldRow, newRow map[string]any) error

// Options configure a Handler. The zero value is usable and INSECURE: with
// no Check, every table in schema public is writable by anyone who can
// reach the endpoint.
type Options struct {
	// Checked names the tables ("todos" for public.todos, or
	// "schema.table") whose updates and deletes must match their original
	// values; the others are last-write-wins.
	Checked map[string]bool
	// Authorize, when set, authenticates each request. An error wrapping
	// ErrUnauthorized answers 401 and applies nothing; the principal is
	// passed to Check and available to named mutations via Principal.
	Authorize func(ctx context.Context, r *http.Request) (principal any, err error)
	// Check, when set, authorises every row mutation; schema public is then
	// no longer writable by default (Check decides every table).
	Check CheckFunc
	// MaxBodyBytes bounds the request body (413 above it); default 1 MiB.
	MaxBodyBytes int64
	// LSN finds the LSN reported for an accepted transaction; default
	// UpperBoundLSN.
	LSN    LSNResolver
	Logger *slog.Logger
}

// Handler serves POST /v1/mutations.
type Handler struct {
	pool    *pgxpool.Pool
	opts    Options
	catalog *catalog

	mu    sync.RWMutex
	named map[string]NamedFunc
}

// New returns a Handler writing through pool. Run Migrate first.
func New(pool *pgxpool.Pool, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.LSN == nil {
		opts.LSN = UpperBoundLSN{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{pool: pool, opts: opts, catalog: newCatalog(), named: map[string]NamedFunc{}}
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
// (400, 401, 405, 413); it never answers 5xx for a client's input.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("allow", "POST, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, volt.MutationError{Message: "method not allowed: use POST"})
		return
	}
	var principal any
	if h.opts.Authorize != nil {
		p, err := h.opts.Authorize(r.Context(), r)
		if errors.Is(err, ErrUnauthorized) {
			writeJSON(w, http.StatusUnauthorized, volt.MutationError{Message: clean(err.Error()), Code: volt.CodeUnauthorized})
			return
		}
		if err != nil {
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
	results := h.Apply(r.Context(), principal, req)
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
	return req, 0, nil
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
