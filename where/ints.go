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
