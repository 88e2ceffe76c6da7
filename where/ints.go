package where

import (
	"math"
	"math/big"
	"strconv"
	"strings"
)

// intRange returns the bounds of int2, int4 or int8.
func intRange(t Type) (int64, int64) {
	switch t.Name {
	case "int2":
		return math.MinInt16, math.MaxInt16
	case "int4":
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

func intOutOfRange(t Type) *Error {
	switch t.Name {
	case "int2":
		return errorf("smallint out of range")
	case "int4":
		return errorf("integer out of range")
	}
	return errorf("bigint out of range")
}

func pgIntName(t Type) string {
	switch t.Name {
	case "int2":
		return "smallint"
	case "int4":
		return "integer"
	}
	return "bigint"
}

// parseInt implements int2in/int4in/int8in.
func parseInt(s string, t Type) (int64, error) {
	v := strings.TrimSpace(s)
	digits := strings.TrimLeft(v, "+-")
	if len(v)-len(digits) > 1 || digits == "" || !allDigits(digits) {
		return 0, errorf("invalid input syntax for type %s: %q", pgIntName(t), s)
	}
	i, err := strconv.ParseInt(v, 10, 64)
	lo, hi := intRange(t)
	if err != nil || i < lo || i > hi {
		return 0, errorf("value %q is out of range for type %s", v, pgIntName(t))
	}
	return i, nil
}

// checkInt range-checks an int64 result for type t.
func checkInt(i int64, t Type) (int64, error) {
	lo, hi := intRange(t)
	if i < lo || i > hi {
		return 0, intOutOfRange(t)
	}
	return i, nil
}

// intArith applies + - * / % with result type t and Postgres' overflow checks.
func intArith(op string, a, b int64, t Type) (int64, error) {
	switch op {
	case "/", "%":
		if b == 0 {
			return 0, errorf("division by zero")
		}
		if b == -1 {
			if op == "%" {
				return 0, nil
			}
			if a == math.MinInt64 {
				return 0, intOutOfRange(t)
			}
			return checkInt(-a, t)
		}
		if op == "/" {
			return a / b, nil
		}
		return a % b, nil
	}
	x, y := big.NewInt(a), big.NewInt(b)
	switch op {
	case "+":
		x.Add(x, y)
	case "-":
		x.Sub(x, y)
	default:
		x.Mul(x, y)
	}
	if !x.IsInt64() {
		return 0, intOutOfRange(t)
	}
	return checkInt(x.Int64(), t)
}

// numericToInt implements numeric → intN casts (round half away from zero).
func numericToInt(n *numeric, t Type) (int64, error) {
	if n.special == numNaN {
		return 0, errorf("cannot convert NaN to %s", pgIntName(t))
	}
	if n.special != numFinite {
		return 0, errorf("cannot convert infinity to %s", pgIntName(t))
	}
	r, _ := n.roundToInt()
	if !r.IsInt64() {
		return 0, intOutOfRange(t)
	}
	return checkInt(r.Int64(), t)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type binFn = func(a, b any) (any, error)

// makeArith builds + - * / % for a resolved signature, returning the result type.
func makeArith(op string, s sig) (Type, binFn) {
	l, r := s.l, s.r
	switch {
	case l.category() == 'N' && l == r && l.Name == "numeric":
		return tNumeric, numericArith(op)
	case isInt(l) && isInt(r):
		res := wider(l, r)
		return res, func(a, b any) (any, error) { return intArith(op, a.(int64), b.(int64), res) }
	case isFloat(l) && isFloat(r):
		bits := 64
		res := tFloat8
		if l == tFloat4 && r == tFloat4 {
			bits, res = 32, tFloat4
		}
		return res, func(a, b any) (any, error) { return floatArith(op, a.(float64), b.(float64), bits) }
	}
	return dateArith(op, l, r)
}

func isInt(t Type) bool   { return !t.Array && (t == tInt2 || t == tInt4 || t == tInt8) }
func isFloat(t Type) bool { return !t.Array && (t == tFloat4 || t == tFloat8) }

func wider(a, b Type) Type {
	if a == tInt8 || b == tInt8 {
		return tInt8
	}
	if a == tInt4 || b == tInt4 {
		return tInt4
	}
	return tInt2
}

func numericArith(op string) binFn {
	return func(a, b any) (any, error) {
		x, y := a.(*numeric), b.(*numeric)
		switch op {
		case "+":
			return checkWeight(addNumeric(x, y))
		case "-":
			return checkWeight(addNumeric(x, y.neg()))
		case "*":
			return mulNumeric(x, y)
		case "/":
			return divNumeric(x, y)
		}
		return modNumeric(x, y)
	}
}

// makeNeg builds unary minus for type t.
func makeNeg(t Type) func(any) (any, error) {
	switch {
	case isInt(t):
		return func(v any) (any, error) { return intArith("-", 0, v.(int64), t) }
	case isFloat(t):
		return func(v any) (any, error) { return -v.(float64), nil }
	case t == tNumeric:
		return func(v any) (any, error) { return v.(*numeric).neg(), nil }
	}
	return func(v any) (any, error) { return negInterval(v.(interval)) }
}

// ivChecked validates that an interval's fields fit Postgres' ranges.
func ivChecked(months, days *big.Int, usec *big.Int) (interval, error) {
	if !months.IsInt64() || !days.IsInt64() || !usec.IsInt64() ||
		months.Int64() > 1<<31-1 || months.Int64() < -(1<<31) || days.Int64() > 1<<31-1 || days.Int64() < -(1<<31) {
		return interval{}, errorf("interval out of range")
	}
	return interval{months: months.Int64(), days: days.Int64(), usec: usec.Int64()}, nil
}

func negInterval(iv interval) (interval, error) {
	return ivChecked(big.NewInt(-iv.months), big.NewInt(-iv.days), new(big.Int).Neg(big.NewInt(iv.usec)))
}

func addInterval(a, b interval, sign int64) (interval, error) {
	m := big.NewInt(a.months + sign*b.months)
	d := big.NewInt(a.days + sign*b.days)
	u := new(big.Int).Add(big.NewInt(a.usec), new(big.Int).Mul(big.NewInt(sign), big.NewInt(b.usec)))
	return ivChecked(m, d, u)
}
