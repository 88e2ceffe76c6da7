package where

import (
	"math"
	"strconv"
	"strings"
)

func nan() float64         { return math.NaN() }
func inf(sign int) float64 { return math.Inf(sign) }

// parseFloat implements float4in (bits 32) and float8in (bits 64).
func parseFloat(s string, bits int) (float64, error) {
	t := strings.TrimSpace(s)
	tn := "double precision"
	if bits == 32 {
		tn = "real"
	}
	switch strings.ToLower(t) {
	case "nan", "+nan", "-nan":
		return nan(), nil
	case "infinity", "+infinity", "inf", "+inf":
		return inf(1), nil
	case "-infinity", "-inf":
		return inf(-1), nil
	}
	if t == "" || strings.ContainsAny(t, "_xXpPnN") {
		return 0, errorf("invalid input syntax for type %s: %q", tn, s)
	}
	f, err := strconv.ParseFloat(t, bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, errorf("%q is out of range for type %s", t, tn)
		}
		return 0, errorf("invalid input syntax for type %s: %q", tn, s)
	}
	if f == 0 && !zeroMantissa(t) {
		return 0, errorf("%q is out of range for type %s", t, tn)
	}
	return f, nil
}

// zeroMantissa reports whether a decimal float literal's digits are all zero
// (so a zero result is not an underflow).
func zeroMantissa(t string) bool {
	m, _, _ := strings.Cut(strings.ToLower(t), "e")
	for _, c := range m {
		if c >= '1' && c <= '9' {
			return false
		}
	}
	return true
}

// formatFloat implements float4out/float8out with extra_float_digits > 0:
// shortest round-trip digits, fixed notation for decimal exponents in
// [-4, 15) (float8) or [-4, 6) (float4), scientific otherwise.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	sci := strconv.FormatFloat(f, 'e', -1, bits)
	ei := strings.LastIndexByte(sci, 'e')
	exp, _ := strconv.Atoi(sci[ei+1:])
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if exp >= -4 && exp < limit {
		return strconv.FormatFloat(f, 'f', -1, bits)
	}
	return sci
}

// cmpFloat implements float8_cmp_internal: NaNs are equal to each other and
// greater than everything else; -0 equals 0.
func cmpFloat(a, b float64) int {
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an && bn:
		return 0
	case an:
		return 1
	case bn:
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// floatArith applies + - * / in float64 or (bits 32) float32 arithmetic with
// Postgres' overflow, underflow and division-by-zero checks.
func floatArith(op string, a, b float64, bits int) (float64, error) {
	if op == "/" && b == 0 && !math.IsNaN(a) {
		return 0, errorf("division by zero")
	}
	var r float64
	if bits == 32 {
		x, y := float32(a), float32(b)
		switch op {
		case "+":
			r = float64(float32(x + y))
		case "-":
			r = float64(float32(x - y))
		case "*":
			r = float64(float32(x * y))
		default:
			r = float64(float32(x / y))
		}
	} else {
		switch op {
		case "+":
			r = float64(a + b)
		case "-":
			r = float64(a - b)
		case "*":
			r = float64(a * b)
		default:
			r = float64(a / b)
		}
	}
	return r, floatCheck(op, r, a, b)
}

func floatCheck(op string, r, a, b float64) error {
	ai, bi := math.IsInf(a, 0), math.IsInf(b, 0)
	switch op {
	case "+", "-":
		if math.IsInf(r, 0) && !ai && !bi {
			return errorf("value out of range: overflow")
		}
	case "*":
		if math.IsInf(r, 0) && !ai && !bi {
			return errorf("value out of range: overflow")
		}
		if r == 0 && a != 0 && b != 0 {
			return errorf("value out of range: underflow")
		}
	case "/":
		if math.IsInf(r, 0) && !ai {
			return errorf("value out of range: overflow")
		}
		if r == 0 && a != 0 && !bi {
			return errorf("value out of range: underflow")
		}
	}
	return nil
}

// floatToInt implements float → intN casts: round half to even, then range check.
func floatToInt(f float64, t Type) (int64, error) {
	r := math.RoundToEven(f)
	lo, _ := intRange(t)
	if math.IsNaN(r) || r < float64(lo) || r >= -float64(lo) {
		return 0, intOutOfRange(t)
	}
	return int64(r), nil
}

// floatToNumeric implements float → numeric casts (%.15g or %.6g first).
func floatToNumeric(f float64, bits int) *numeric {
	switch {
	case math.IsNaN(f):
		return numNaNv
	case math.IsInf(f, 0):
		return infOf(int(math.Copysign(1, f)))
	}
	digits := 15
	if bits == 32 {
		digits = 6
	}
	n, _ := parseNumeric(strconv.FormatFloat(f, 'g', digits, 64))
	return n
}
