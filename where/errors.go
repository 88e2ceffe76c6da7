package where

import "fmt"

// prefix is what Parse puts in front of the clause before handing it to the
// Postgres parser; semantic error locations are reported relative to the
// user's clause, so they are node locations minus len(prefix).
const prefix = "SELECT 1 WHERE "

// Error is the error type returned by Parse (and by Matches for evaluation
// failures). When HasLocation is set, Error() renders as
// "At location N: message", mirroring Electric's where-clause errors.
type Error struct {
	Location    int
	HasLocation bool
	Message     string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.HasLocation {
		return fmt.Sprintf("At location %d: %s", e.Location, e.Message)
	}
	return e.Message
}

// errorf builds a location-less *Error.
func errorf(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

// errAt builds an *Error at an AST node location (an offset into the wrapped
// statement); negative locations produce a location-less error.
func errAt(loc int32, format string, args ...any) *Error {
	e := errorf(format, args...)
	if loc >= int32(len(prefix)) {
		e.Location = int(loc) - len(prefix)
		e.HasLocation = true
	}
	return e
}

// withLoc attaches a location to err if it is a location-less *Error;
// other errors are wrapped into an *Error at loc.
func withLoc(err error, loc int32) *Error {
	if e, ok := err.(*Error); ok {
		if e.HasLocation {
			return e
		}
		return errAt(loc, "%s", e.Message)
	}
	return errAt(loc, "%s", err.Error())
}
