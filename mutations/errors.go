package mutations

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/voltsync/volt"
)

// ErrUnauthorized, returned (possibly wrapped) by Options.Authorize, makes
// the whole request a 401 and applies nothing.
var ErrUnauthorized = errors.New("unauthorized")

// ErrForbidden, returned (possibly wrapped) by Options.Authorize, makes the
// whole request a 403 and applies and records nothing: for refusals that
// are about the server or the caller, not about a write (no write rules are
// configured, say). The client keeps its transactions.
var ErrForbidden = errors.New("forbidden")

// Rejection rejects a client transaction with a code (volt.CodeForbidden,
// volt.CodeConflict, or an application's own code). Return it from
// Options.Check or from a named mutation.
type Rejection struct {
	Code    string
	Message string
}

func (r *Rejection) Error() string {
	if r.Message == "" {
		return r.Code
	}
	return r.Code + ": " + r.Message
}

// Reject returns a *Rejection.
func Reject(code, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Message: fmt.Sprintf(format, args...)}
}

// conflictError is a rejected row mutation carrying the current row.
type conflictError struct {
	msg string
	row []byte // to_jsonb of the current row, or nil when it does not exist
}

func (e *conflictError) Error() string { return e.msg }

// retryError marks a transient failure: nothing applied, nothing recorded.
type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// outcome turns the error that ended a client transaction into its result.
// The bool is false for transient failures (status retry).
func outcome(err error) (volt.MutationResult, bool) {
	var rej *Rejection
	var conf *conflictError
	var pgErr *pgconn.PgError
	var retry *retryError
	switch {
	case errors.As(err, &retry):
		return volt.MutationResult{Status: volt.StatusRetry, Message: clean(err.Error())}, false
	case errors.As(err, &rej):
		code := rej.Code
		if code == "" {
			code = volt.CodeInvalid
		}
		return rejected(code, rej.Message), true
	case errors.As(err, &conf):
		r := rejected(volt.CodeConflict, conf.msg)
		r.Row = conf.row
		if r.Row == nil {
			r.Row = []byte("null")
		}
		return r, true
	case errors.As(err, &pgErr):
		return pgOutcome(pgErr)
	case transient(err):
		return volt.MutationResult{Status: volt.StatusRetry, Message: clean(err.Error())}, false
	}
	return rejected(volt.CodeInvalid, err.Error()), true
}

// final reports whether err decides a client transaction (a rejection),
// as opposed to a transient failure.
func final(err error) bool {
	_, f := outcome(err)
	return f
}

// pgOutcome classifies a Postgres error by SQLSTATE class.
func pgOutcome(e *pgconn.PgError) (volt.MutationResult, bool) {
	switch e.Code[:2] {
	case "23": // integrity constraint violation
		r := rejected(volt.CodeConstraint, e.Message)
		r.Constraint = e.ConstraintName
		if r.Constraint == "" && e.ColumnName != "" {
			r.Constraint = e.ColumnName // not-null violations name only the column
		}
		return r, true
	case "08", "40", "53", "55", "57", "58", "XX":
		// connection, rollback (serialization, deadlock), resources, lock
		// not available, operator intervention (restart), system errors.
		return volt.MutationResult{Status: volt.StatusRetry, Message: clean(e.Message)}, false
	}
	return rejected(volt.CodeInvalid, e.Message), true
}

// transient reports errors that say nothing about the request itself: lost
// connections, timeouts, cancellation.
func transient(err error) bool {
	var netErr net.Error
	var connErr *pgconn.ConnectError
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &netErr) || errors.As(err, &connErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "conn closed") ||
		strings.Contains(err.Error(), "unexpected EOF")
}

// catalogStale reports Postgres errors that a stale catalog cache explains.
func catalogStale(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", "42703", "42804", "42704": // undefined table/column, datatype mismatch, undefined object
		return true
	}
	return false
}

func rejected(code, msg string) volt.MutationResult {
	return volt.MutationResult{Status: volt.StatusRejected, Code: code, Message: clean(msg)}
}

// clean makes client-influenced text safe to store in a Postgres text
// column: valid UTF-8, no NUL, bounded length.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	const maxLen = 1000
	if len(s) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
