package where

import (
	"math"
	"math/big"
	"strconv"
	"strings"
)

// numeric is an exact decimal u / 10^scale, or a special value. scale is
// Postgres' dscale (display scale), which arithmetic propagates like
// Postgres does so that text output and division scale agree.
type numeric struct {
	special int8 // numFinite, numNaN, numPosInf, numNegInf
	u       *big.Int
	scale   int
}

const (
	numFinite int8 = iota
	numNaN
	numPosInf
	numNegInf
)

const maxNumericScale = 1000

var bigTen = big.NewInt(10)

func pow10(n int) *big.Int { return new(big.Int).Exp(bigTen, big.NewInt(int64(n)), nil) }

func numFromInt(i int64) *numeric { return &numeric{u: big.NewInt(i)} }

// parseNumeric implements numeric_in for the forms Postgres accepts.
func parseNumeric(s string) (*numeric, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "nan":
		return &numeric{special: numNaN}, nil
	case "infinity", "+infinity", "inf", "+inf":
		return &numeric{special: numPosInf}, nil
	case "-infinity", "-inf":
		return &numeric{special: numNegInf}, nil
	}
	bad := errorf("invalid input syntax for type numeric: %q", s)
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	mant, exp := t, 0
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		e, err := strconv.Atoi(t[i+1:])
		if err != nil || e > maxNumericScale || e < -maxNumericScale {
			return nil, bad
		}
		mant, exp = t[:i], e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart+frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return nil, bad
	}
	u, _ := new(big.Int).SetString(intPart+frac, 10)
	scale := len(frac) - exp
	if scale < 0 {
		u.Mul(u, pow10(-scale))
		scale = 0
	}
	if scale > maxNumericScale {
		return nil, errorf("value overflows numeric format")
	}
	if neg {
		u.Neg(u)
	}
	return &numeric{u: u, scale: scale}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String implements numeric_out.
func (n *numeric) String() string {
	switch n.special {
	case numNaN:
		return "NaN"
	case numPosInf:
		return "Infinity"
	case numNegInf:
		return "-Infinity"
	}
	digits := new(big.Int).Abs(n.u).String()
	sign := ""
	if n.u.Sign() < 0 {
		sign = "-"
	}
	if n.scale == 0 {
		return sign + digits
	}
	if len(digits) <= n.scale {
		digits = strings.Repeat("0", n.scale-len(digits)+1) + digits
	}
	cut := len(digits) - n.scale
	return sign + digits[:cut] + "." + digits[cut:]
}

// rank orders special values for comparison: -Inf < finite < +Inf < NaN.
func (n *numeric) rank() int {
	switch n.special {
	case numNegInf:
		return -1
	case numPosInf:
		return 1
	case numNaN:
		return 2
	}
	return 0
}

// alignedInts returns a and b's unscaled values brought to a common scale.
func alignedInts(a, b *numeric) (*big.Int, *big.Int, int) {
	x, y := new(big.Int).Set(a.u), new(big.Int).Set(b.u)
	s := a.scale
	if b.scale > s {
		x.Mul(x, pow10(b.scale-a.scale))
		s = b.scale
	} else if a.scale > b.scale {
		y.Mul(y, pow10(a.scale-b.scale))
	}
	return x, y, s
}

func cmpNumeric(a, b *numeric) int {
	ra, rb := a.rank(), b.rank()
	if ra != rb || ra != 0 {
		return cmpInt(int64(ra), int64(rb))
	}
	x, y, _ := alignedInts(a, b)
	return x.Cmp(y)
}

func (n *numeric) sign() int {
	switch n.special {
	case numPosInf:
		return 1
	case numNegInf:
		return -1
	case numNaN:
		return 0
	}
	return n.u.Sign()
}

func (n *numeric) neg() *numeric {
	switch n.special {
	case numPosInf:
		return &numeric{special: numNegInf}
	case numNegInf:
		return &numeric{special: numPosInf}
	case numNaN:
		return n
	}
	return &numeric{u: new(big.Int).Neg(n.u), scale: n.scale}
}

var numNaNv = &numeric{special: numNaN}

func infOf(sign int) *numeric {
	switch {
	case sign > 0:
		return &numeric{special: numPosInf}
	case sign < 0:
		return &numeric{special: numNegInf}
	}
	return numNaNv
}

func addNumeric(a, b *numeric) *numeric {
	if a.special != numFinite || b.special != numFinite {
		if a.special == numNaN || b.special == numNaN {
			return numNaNv
		}
		if a.special != numFinite && b.special != numFinite && a.special != b.special {
			return numNaNv
		}
		if a.special != numFinite {
			return a
		}
		return b
	}
	x, y, s := alignedInts(a, b)
	return &numeric{u: x.Add(x, y), scale: s}
}

// mulNumeric implements numeric_mul: the exact product, rounded to
// NUMERIC_DSCALE_MAX places when it has more, and an error when it has more
// than numMaxWeightDigs digits before the point (as Postgres' make_result).
// A product that is certain to overflow is refused before it is computed,
// so a clause that multiplies huge numbers costs no more than Postgres.
func mulNumeric(a, b *numeric) (*numeric, error) {
	if a.special != numFinite || b.special != numFinite {
		if a.special == numNaN || b.special == numNaN {
			return numNaNv, nil
		}
		return infOf(a.sign() * b.sign()), nil
	}
	if minIntDigits(a)+minIntDigits(b)-1 > numMaxWeightDigs {
		return nil, errOverflow
	}
	n := &numeric{u: new(big.Int).Mul(a.u, b.u), scale: a.scale + b.scale}
	if n.scale > numDscaleMax {
		n.u = roundDiv(n.u, pow10(n.scale-numDscaleMax))
		n.scale = numDscaleMax
	}
	return checkWeight(n)
}

const numDscaleMax = 16383 // NUMERIC_DSCALE_MAX

var errOverflow = errorf("value overflows numeric format")

// minIntDigits is a lower bound of the digits of finite n before the
// decimal point, from the bit length alone: the digits of n.u minus the
// scale (so zero or negative for |n| < 1).
func minIntDigits(n *numeric) int {
	bits := n.u.BitLen()
	if bits == 0 {
		return -n.scale
	}
	return int(float64(bits-1)*math.Log10(2)-1e-9) + 1 - n.scale
}

// checkWeight is make_result's overflow check: finite n may have at most
// numMaxWeightDigs digits before the decimal point.
func checkWeight(n *numeric) (*numeric, error) {
	if n.special != numFinite || minIntDigits(n)+1 < numMaxWeightDigs {
		return n, nil // cheap: clearly in range
	}
	limit := pow10(numMaxWeightDigs + n.scale)
	if new(big.Int).Abs(n.u).Cmp(limit) >= 0 {
		return nil, errOverflow
	}
	return n, nil
}

// divNumeric implements numeric_div, including select_div_scale's choice of
// result scale and round-half-away-from-zero.
func divNumeric(a, b *numeric) (*numeric, error) {
	if a.special == numNaN || b.special == numNaN {
		return numNaNv, nil
	}
	if b.special == numFinite && b.u.Sign() == 0 {
		return nil, errorf("division by zero")
	}
	if a.special != numFinite {
		if b.special != numFinite {
			return numNaNv, nil
		}
		return infOf(a.sign() * b.sign()), nil
	}
	if b.special != numFinite {
		return &numeric{u: new(big.Int)}, nil
	}
	rscale := divScale(a, b)
	num := new(big.Int).Mul(a.u, pow10(b.scale+rscale))
	den := new(big.Int).Mul(b.u, pow10(a.scale))
	return checkWeight(&numeric{u: roundDiv(num, den), scale: rscale})
}

// roundDiv returns num/den rounded half away from zero.
func roundDiv(num, den *big.Int) *big.Int {
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	r2 := new(big.Int).Abs(r)
	r2.Lsh(r2, 1)
	if r2.Cmp(new(big.Int).Abs(den)) >= 0 {
		if (num.Sign() < 0) != (den.Sign() < 0) {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q
}

// weightFirst returns the base-10000 weight and first digit of a nonzero value.
func weightFirst(n *numeric) (int, int) {
	if n.u.Sign() == 0 {
		return 0, 0
	}
	d := new(big.Int).Abs(n.u).String()
	e := len(d) - n.scale - 1
	w := e / 4
	if e < 0 && e%4 != 0 {
		w--
	}
	k := e - 4*w + 1
	for len(d) < k {
		d += "0"
	}
	first, _ := strconv.Atoi(d[:k])
	return w, first
}

func divScale(a, b *numeric) int {
	w1, f1 := weightFirst(a)
	w2, f2 := weightFirst(b)
	qw := w1 - w2
	if f1 <= f2 {
		qw--
	}
	r := 16 - qw*4
	r = max(r, a.scale, b.scale, 0)
	return min(r, maxNumericScale)
}

// modNumeric implements numeric_mod: a - trunc(a/b)*b.
func modNumeric(a, b *numeric) (*numeric, error) {
	if a.special == numNaN || b.special == numNaN {
		return numNaNv, nil
	}
	if b.special == numFinite && b.u.Sign() == 0 {
		return nil, errorf("division by zero")
	}
	if a.special != numFinite {
		return numNaNv, nil
	}
	if b.special != numFinite {
		return a, nil
	}
	x, y, s := alignedInts(a, b)
	return &numeric{u: x.Rem(x, y), scale: s}, nil
}

// roundToInt rounds half away from zero, as numeric → integer casts do.
func (n *numeric) roundToInt() (*big.Int, bool) {
	if n.special != numFinite {
		return nil, false
	}
	return roundDiv(n.u, pow10(n.scale)), true
}

// float converts to float64 (bits 64) or float32 (bits 32) with correct rounding.
func (n *numeric) float(bits int) (float64, error) {
	switch n.special {
	case numNaN:
		return nan(), nil
	case numPosInf:
		return inf(1), nil
	case numNegInf:
		return inf(-1), nil
	}
	f, err := strconv.ParseFloat(n.String(), bits)
	if err != nil {
		return 0, errorf("value out of range: overflow")
	}
	return f, nil
}
