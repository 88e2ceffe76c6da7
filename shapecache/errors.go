package shapecache

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrOverloaded is returned by GetOrCreate when a new shape cannot be
// created now: the shape limit or the concurrent snapshot limit is
// reached. The HTTP layer answers 503 with retry-after.
var ErrOverloaded = errors.New("shapecache: overloaded")

// ClientError returns the Postgres error behind err when the request
// caused it, so that retrying the same request cannot succeed: a data
// exception (class 22: a cast that fails on a row, division by zero), a
// syntax or access error (class 42), a feature Postgres does not support
// (0A) or a cardinality violation (21). Everything else (connection,
// resources, operator intervention, serialization failures, internal
// errors, errors that are not Postgres') is the server's: ok is false.
//
// A table volt's role does not own is one of them (42501, rewritten by
// postgres.Publisher.AddTable to name the fix): the request cannot succeed
// until an operator changes the table's owner, so it is not retried.
//
// A statement stopped by statement_timeout (57014; the snapshot pool's
// connections carry the server's -query-timeout) is one of them too: the
// shape's query costs more than the server allows, and the same query
// would again. Its message is replaced by one that names the limit.
//
// The error's message may quote row values (`invalid input syntax for
// type integer: "…"`), so it must not be logged, only its Code.
func ClientError(err error) (pe *pgconn.PgError, ok bool) {
	if !errors.As(err, &pe) || len(pe.Code) != 5 {
		return nil, false
	}
	var le *subqueryLimitError
	if errors.As(err, &le) {
		return pe, true
	}
	switch pe.Code[:2] {
	case "22", "42", "0A", "21":
		return pe, true
	}
	if pe.Code == "57014" && strings.Contains(pe.Message, "statement timeout") {
		return queryTimeoutError(), true
	}
	return nil, false
}

// queryTimeoutError is what ClientError reports for a shape query that
// statement_timeout stopped.
func queryTimeoutError() *pgconn.PgError {
	return &pgconn.PgError{Severity: "ERROR", Code: "57014",
		Message: "The shape's query ran longer than the server's limit (-query-timeout, VOLT_QUERY_TIMEOUT); narrow the where clause"}
}

// subqueryLimitError is a shape whose subqueries hold more values than
// Cache.MaxSubqueryValues: the request's fault, so ClientError reports it
// (as program_limit_exceeded, 54000) and its clients get a 400 naming the
// limit.
type subqueryLimitError struct{ pe *pgconn.PgError }

func (e *subqueryLimitError) Error() string { return e.pe.Message }
func (e *subqueryLimitError) Unwrap() error { return e.pe }

func errTooManyValues(limit int) error {
	return &subqueryLimitError{pe: &pgconn.PgError{Severity: "ERROR", Code: "54000",
		Message: fmt.Sprintf("The shape's subqueries select more than %d values, the server's limit (-max-subquery-values, VOLT_MAX_SUBQUERY_VALUES); narrow the subqueries", limit)}}
}
