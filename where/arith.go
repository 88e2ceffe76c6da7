package where

import (
	"math/big"
)

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
			return addNumeric(x, y), nil
		case "-":
			return addNumeric(x, y.neg()), nil
		case "*":
			return mulNumeric(x, y), nil
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
