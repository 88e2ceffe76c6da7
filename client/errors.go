package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

var (
	// ErrBadRequest matches (errors.Is) an *Error with status 400: the
	// server refused the shape definition or the request parameters.
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized matches an *Error with status 401 or 403.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrProtocol is returned (wrapped) by Stream.Run when a response breaks
	// the protocol: a missing electric-handle or electric-offset header, a
	// body that is not a JSON array of messages, an invalid offset.
	ErrProtocol = errors.New("shape protocol violation")
	// ErrInvalidValue is returned (wrapped) by Column.Parse and by
	// Stream.Run for a column value that does not parse as its type.
	ErrInvalidValue = errors.New("invalid value")
	// ErrFastLoop is returned by Stream.Run when the server keeps answering
	// non-live requests at the same offset without progress.
	ErrFastLoop = errors.New("server answers the same offset repeatedly without progress")
	// ErrStopped is returned by Shape's Await methods when the shape's Run
	// has returned; the error wraps Run's error.
	ErrStopped = errors.New("shape stopped")
)

// Error is an HTTP error answer. Stream.Run and the Writer return it for
// the answers that retrying does not fix: any 4xx status other than 409.
// OnError also sees it for the 5xx and 429 answers that are retried. Its
// fields come from the JSON body when it has one.
type Error struct {
	StatusCode int
	// Message is the body's "message" (or "error") field, or the body
	// itself when it is not JSON.
	Message string
	// Code is the body's "code" field, if any.
	Code string
	// Errors is the body's "errors" object: field name to a list of
	// messages (or a nested object, for subset parameters).
	Errors map[string]any
	// Body is the raw response body.
	Body []byte
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "shape request: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Errors) > 0 {
		errs, _ := json.Marshal(e.Errors)
		b.WriteString(" " + string(errs))
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

// newError builds an *Error from a status and a body.
func newError(status int, body []byte) *Error {
	e := &Error{StatusCode: status, Body: body}
	var j struct {
		Message string         `json:"message"`
		Error   string         `json:"error"`
		Code    string         `json:"code"`
		Errors  map[string]any `json:"errors"`
	}
	if json.Unmarshal(body, &j) != nil {
		e.Message = strings.TrimSpace(string(body))
		return e
	}
	e.Message, e.Code, e.Errors = j.Message, j.Code, j.Errors
	if e.Message == "" {
		e.Message = j.Error
	}
	return e
}

// NoRetry is the retryIn an OnError function gets for an error that is not
// retried: the call it happened in returns it.
const NoRetry time.Duration = -1

// RetryError is returned when the caller's context ends while failed
// requests are being retried (the server is down or unreachable, or keeps
// answering 5xx or 429). It wraps both the context's error (its cause, if
// set) and the error of the last failed attempt, so errors.Is matches
// context.DeadlineExceeded as well as, say, syscall.ECONNREFUSED.
type RetryError struct {
	// Ctx is the context's cause.
	Ctx error
	// Last is the error of the last failed attempt: a network error or an
	// *Error.
	Last error
	// Attempts counts the failed attempts in a row.
	Attempts int
}

// Error implements error.
func (e *RetryError) Error() string {
	return fmt.Sprintf("%v after %d failed attempts, the last: %v", e.Ctx, e.Attempts, e.Last)
}

// Unwrap returns the context's error and the last attempt's error.
func (e *RetryError) Unwrap() []error { return []error{e.Ctx, e.Last} }

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
