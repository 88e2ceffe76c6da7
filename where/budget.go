package where

import (
	"errors"
	"unsafe"
)

// Evaluation cost bounds. Postgres lets one operation run for seconds
// (numeric ^ builds results of up to 131,072 digits); volt evaluates every
// shape's clause for every replicated row, so it bounds what one row may
// cost instead and refuses past that with ErrTooCostly.
const (
	// MaxEvalDigits bounds the digits of one numeric ^ result (before and
	// after the point). Postgres' non-integral powers stay below it (their
	// results overflow past e^6000, about 2,606 digits, plus at most 1,000
	// places); integral ones past it are refused before they are computed.
	MaxEvalDigits = 4000
	// EvalBudget is what one row's evaluation may produce (bytes of text
	// and arrays, digits of numerics, summed over every operation), plus
	// evalCredit per byte of the column values it reads.
	EvalBudget = 1 << 20
	evalCredit = 8
)

// ErrTooCostly is matched (errors.Is) by the errors of evaluations that
// exceed volt's cost bounds. A constant part of a clause that exceeds them
// fails Parse; a row whose evaluation does makes Matches fail with it.
var ErrTooCostly = errors.New("where clause too costly to evaluate")

// costErrorf builds an *Error that matches ErrTooCostly.
func costErrorf(format string, args ...any) *Error {
	e := errorf(format, args...)
	e.costly = true
	return e
}

// budgetRow is the Row that Matches hands to the nodes: it passes column
// values through, crediting their size, and nodes that build values charge
// their results' size to it.
type budgetRow struct {
	Row
	left int
}

func (b *budgetRow) Value(col string) (string, bool) {
	s, ok := b.Row.Value(col)
	b.left += evalCredit * len(s)
	return s, ok
}

// charge deducts the cost of v from r's budget when r is a budgetRow
// (constant folding evaluates without one).
func charge(r Row, v any) error {
	b, ok := r.(*budgetRow)
	if !ok {
		return nil
	}
	b.left -= valueSize(v)
	if b.left < 0 {
		return costErrorf("too costly to evaluate: one row's evaluation builds more than %d bytes of values (plus %d per byte of column values read)", EvalBudget, evalCredit)
	}
	return nil
}

// valueSize approximates the bytes (digits for numerics) of a value.
func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case *numeric:
		if x.u == nil {
			return 1
		}
		return x.u.BitLen()*3/10 + 1
	case *array:
		n := len(x.elems) * int(unsafe.Sizeof(any(nil)))
		for _, e := range x.elems {
			switch e.(type) {
			case string, *numeric:
				n += valueSize(e)
			}
		}
		return n
	}
	return 8
}
