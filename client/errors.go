package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
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

// Error is an HTTP error answer that retrying does not fix: any 4xx status
// other than 409. Its fields come from the JSON body when it has one.
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

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
