package where

import (
	"math"
)

// Signatures of the operators beyond + - * / % (pg_operator entries).
var (
	powSigs     = same(tFloat8, tNumeric)
	bitSigs     = same(tInt2, tInt4, tInt8)
	sqrtSigs    = []sig{{r: tFloat8}}
	absSigs     = []sig{{r: tInt2}, {r: tInt4}, {r: tInt8}, {r: tFloat4}, {r: tFloat8}, {r: tNumeric}}
	bitNotSigs  = []sig{{r: tInt2}, {r: tInt4}, {r: tInt8}}
	ivScaleSigs = []sig{{tInterval, tFloat8}, {tFloat8, tInterval}}
)

// unarySigs returns the candidate signatures of a prefix operator.
func unarySigs(op string) []sig {
	switch op {
	case "-", "+":
		return negSigs
	case "|/":
		return sqrtSigs
	case "@":
		return absSigs
	case "~":
		return bitNotSigs
	}
	return nil
}

// makeUnary builds a prefix operator's implementation for operand type t.
func makeUnary(op string, t Type) func(any) (any, error) {
	switch op {
	case "+":
		return func(v any) (any, error) { return v, nil }
	case "-":
		return makeNeg(t)
	case "|/":
		return func(v any) (any, error) { return floatSqrt(v.(float64)) }
	case "~":
		return func(v any) (any, error) { return checkInt(^v.(int64), t) }
	}
	return makeAbs(t)
}

// makeAbs is @ (abs): integer overflow for the most negative value.
func makeAbs(t Type) func(any) (any, error) {
	switch {
	case isInt(t):
		return func(v any) (any, error) {
			i := v.(int64)
			if i < 0 {
				return intArith("-", 0, i, t)
			}
			return i, nil
		}
	case isFloat(t):
		return func(v any) (any, error) { return math.Abs(v.(float64)), nil }
	}
	return func(v any) (any, error) {
		n := v.(*numeric)
		if n.sign() < 0 {
			return n.neg(), nil
		}
		if n.special == numNegInf {
			return infOf(1), nil
		}
		return n, nil
	}
}

// floatSqrt is dsqrt.
func floatSqrt(f float64) (any, error) {
	if f < 0 {
		return nil, errorf("cannot take square root of a negative number")
	}
	return math.Sqrt(f), nil
}

// bitArith implements & | # on integers of the resolved type (never overflows).
func bitArith(op string) binFn {
	return func(a, b any) (any, error) {
		x, y := a.(int64), b.(int64)
		switch op {
		case "&":
			return x & y, nil
		case "|":
			return x | y, nil
		}
		return x ^ y, nil
	}
}

// floatPow is dpow, including its special cases and range errors.
func floatPow(a, b any) (any, error) {
	x, y := a.(float64), b.(float64)
	switch {
	case math.IsNaN(x):
		if math.IsNaN(y) || y != 0 {
			return nan(), nil
		}
		return 1.0, nil
	case math.IsNaN(y):
		if x != 1 {
			return nan(), nil
		}
		return 1.0, nil
	case x == 0 && y < 0:
		return nil, errorf("zero raised to a negative power is undefined")
	case x < 0 && math.Floor(y) != y:
		return nil, errorf("a negative number raised to a non-integer power yields a complex result")
	case math.IsInf(y, 0):
		ax := math.Abs(x)
		switch {
		case ax == 1:
			return 1.0, nil
		case (ax > 1) == (y > 0):
			return inf(1), nil
		}
		return 0.0, nil
	case math.IsInf(x, 0):
		return infPow(x, y), nil
	}
	r := exactPow(x, y)
	if math.IsInf(r, 0) {
		return nil, errorf("value out of range: overflow")
	}
	if r == 0 && x != 0 {
		return nil, errorf("value out of range: underflow")
	}
	return r, nil
}

// infPow is ±Infinity ^ finite y.
func infPow(x, y float64) float64 {
	switch {
	case y == 0:
		return 1
	case x > 0 && y > 0:
		return x
	case x > 0:
		return 0
	}
	odd := y == math.Floor(y) && math.Mod(y, 2) != 0
	switch {
	case y > 0 && odd:
		return x
	case y > 0:
		return -x
	case odd:
		return math.Copysign(0, -1)
	}
	return 0
}

// floatScale is interval * float8, float8 * interval and interval / float8.
func floatScale(op string, s sig) binFn {
	return func(a, b any) (any, error) {
		if s.l == tFloat8 {
			a, b = b, a
		}
		iv, f := a.(interval), b.(float64)
		if op == "/" {
			if f == 0 {
				return nil, errorf("division by zero")
			}
			return intervalDiv(iv, f)
		}
		return intervalMul(iv, f)
	}
}

// intervalMul is interval_mul (PostgreSQL 15): months and days are
// truncated, their fractions cascade down to days and microseconds.
func intervalMul(iv interval, f float64) (any, error) {
	rangeErr := errorf("interval out of range")
	m := float64(iv.months) * f
	if math.IsNaN(m) || m < math.MinInt32 || m >= -math.MinInt32 {
		return nil, rangeErr
	}
	d := float64(iv.days) * f
	if math.IsNaN(d) || d < math.MinInt32 || d >= -math.MinInt32 {
		return nil, rangeErr
	}
	res := interval{months: int64(m), days: int64(d)}
	monthRem := tsRound((float64(iv.months)*f - float64(res.months)) * 30)
	secRem := tsRound((float64(iv.days)*f - float64(res.days) + monthRem - math.Trunc(monthRem)) * 86400)
	if math.Abs(secRem) >= 86400 {
		res.days += int64(secRem / 86400)
		secRem -= math.Trunc(secRem/86400) * 86400
	}
	res.days += int64(monthRem)
	if res.days < math.MinInt32 || res.days > math.MaxInt32 {
		return nil, rangeErr
	}
	us := math.RoundToEven(float64(iv.usec)*f + secRem*1e6)
	if math.IsNaN(us) || us < math.MinInt64 || us >= -math.MinInt64 {
		return nil, rangeErr
	}
	res.usec = int64(us)
	return res, nil
}

// intervalDiv is interval_div (PostgreSQL 15).
func intervalDiv(iv interval, f float64) (any, error) {
	res := interval{months: int64(float64(iv.months) / f), days: int64(float64(iv.days) / f)}
	if math.IsNaN(f) {
		return nil, errorf("interval out of range")
	}
	monthRem := tsRound((float64(iv.months)/f - float64(res.months)) * 30)
	secRem := tsRound((float64(iv.days)/f - float64(res.days) + monthRem - math.Trunc(monthRem)) * 86400)
	if math.Abs(secRem) >= 86400 {
		res.days += int64(secRem / 86400)
		secRem -= math.Trunc(secRem/86400) * 86400
	}
	res.days += int64(monthRem)
	res.usec = int64(math.RoundToEven(float64(iv.usec)/f + secRem*1e6))
	return res, nil
}

// tsRound is TSROUND: round to microsecond precision.
func tsRound(x float64) float64 { return math.RoundToEven(x*1e6) / 1e6 }
