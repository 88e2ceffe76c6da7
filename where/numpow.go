package where

import (
	"math"
	"math/big"
)

const (
	numMinSigDigits   = 16   // NUMERIC_MIN_SIG_DIGITS
	numMaxResultScale = 2000 // NUMERIC_MAX_RESULT_SCALE
	numMaxWeightDigs  = 131072
)

var (
	numOne  = &numeric{u: big.NewInt(1)}
	numZero = &numeric{u: big.NewInt(0)}
)

// numericPow is numeric_power (PostgreSQL 15): special values first, then
// power_var's choice of result scale, with the digits computed exactly
// (integral exponents) or in high precision, rounded half away from zero.
// maxPowPrec bounds the working precision of a non-integral numeric power.
const maxPowPrec = 16384

func numericPow(a, b any) (any, error) {
	x, y := a.(*numeric), b.(*numeric)
	switch {
	case x.special == numNaN:
		if y.special == numFinite && y.u.Sign() == 0 {
			return numOne, nil
		}
		return numNaNv, nil
	case y.special == numNaN:
		if x.special == numFinite && x.u.Cmp(pow10(x.scale)) == 0 {
			return numOne, nil
		}
		return numNaNv, nil
	}
	s1, s2 := x.sign(), y.sign()
	if s1 == 0 && s2 < 0 {
		return nil, errorf("zero raised to a negative power is undefined")
	}
	if s1 < 0 && !y.integral() {
		return nil, errorf("a negative number raised to a non-integer power yields a complex result")
	}
	if x.special != numFinite || y.special != numFinite {
		return numericPowInf(x, y, s2), nil
	}
	if y.integral() {
		if e, ok := y.roundToInt(); ok && e.IsInt64() && e.Int64() >= math.MinInt32 && e.Int64() <= math.MaxInt32 {
			rscale := min(max(numMinSigDigits, x.scale), maxNumericScale)
			return numericPowInt(x, e.Int64(), rscale)
		}
	}
	if s1 == 0 {
		return &numeric{u: new(big.Int), scale: numMinSigDigits}, nil
	}
	if s1 < 0 {
		// An integral exponent beyond int32 (the rest failed above):
		// Postgres works with |x| and sets the sign by the parity.
		r, err := numericPow(x.neg(), y)
		if e, _ := y.roundToInt(); err == nil && e.Bit(0) == 1 {
			r = r.(*numeric).neg()
		}
		return r, err
	}
	// ln of the result, estimated before any big work: exp_var overflows
	// from e^6000 on (NUMERIC_MAX_RESULT_SCALE * 3) and gives zero below
	// e^-6000, so the result has at most about 2,606 digits before the
	// point.
	lnx, yf := numLn(x), numFloat(y)
	val := lnx * yf
	if lnx == 0 {
		val = 0
	}
	if math.Abs(val) >= numMaxResultScale*3 {
		if val > 0 {
			return nil, errOverflow
		}
		return &numeric{u: new(big.Int), scale: maxNumericScale}, nil
	}
	val *= 0.434294481903252
	rscale := numMinSigDigits - int(val)
	rscale = min(max(rscale, x.scale, y.scale, 0), maxNumericScale)
	// y * ln x must be right to the result's last digit: bits for the
	// digits, plus the bits of |y| (ln x's error is multiplied by it).
	prec := uint(max(rscale+int(val), 0)+40)*4 + 64 + uint(max(0, math.Ilogb(yf)))
	if prec > maxPowPrec {
		return nil, costErrorf("too costly to evaluate: numeric power needs %d bits of precision (volt evaluates at most %d)", prec, maxPowPrec)
	}
	bx := new(big.Float).SetPrec(prec).Quo(new(big.Float).SetPrec(prec).SetInt(x.u), new(big.Float).SetPrec(prec).SetInt(pow10(x.scale)))
	by := new(big.Float).SetPrec(prec).Quo(new(big.Float).SetPrec(prec).SetInt(y.u), new(big.Float).SetPrec(prec).SetInt(pow10(y.scale)))
	r := bigExp(new(big.Float).SetPrec(prec).Mul(bigLn(bx, prec), by), prec)
	return floatToScale(r, rscale, prec), nil
}

// numericPowInf handles infinite operands (NaN and error cases are done).
func numericPowInf(x, y *numeric, s2 int) *numeric {
	if y.special != numFinite {
		absGtOne := true
		if x.special == numFinite {
			c := new(big.Int).Abs(x.u).Cmp(pow10(x.scale))
			if c == 0 {
				return numOne
			}
			absGtOne = c > 0
		}
		if absGtOne == (s2 > 0) {
			return infOf(1)
		}
		return numZero
	}
	switch {
	case s2 == 0:
		return numOne
	case s2 < 0:
		return numZero
	case x.special == numPosInf:
		return infOf(1)
	}
	if e, _ := y.roundToInt(); e.Bit(0) == 1 {
		return infOf(-1)
	}
	return infOf(1)
}

// numLn returns ln |n| of a finite nonzero n as a float64, whatever its size.
func numLn(n *numeric) float64 {
	m := new(big.Float)
	e := new(big.Float).SetInt(n.u).MantExp(m)
	mf, _ := m.Float64()
	return math.Log(math.Abs(mf)) + float64(e)*math.Ln2 - float64(n.scale)*math.Ln10
}

// numFloat returns finite n as a float64 (±Inf past its range).
func numFloat(n *numeric) float64 {
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(n.u), new(big.Float).SetInt(pow10(n.scale))).Float64()
	return f
}

// integral reports whether a finite numeric has no fractional part.
func (n *numeric) integral() bool {
	if n.special != numFinite {
		return n.special != numNaN
	}
	return new(big.Int).Rem(n.u, pow10(n.scale)).Sign() == 0
}

// numericPowInt is power_var_int: base ^ exp rounded to rscale.
func numericPowInt(x *numeric, exp int64, rscale int) (any, error) {
	switch {
	case exp == 0:
		return &numeric{u: pow10(rscale), scale: rscale}, nil
	case x.u.Sign() == 0:
		return &numeric{u: new(big.Int), scale: rscale}, nil
	}
	// decimal weight of the result, to catch overflow and tiny results
	f := float64(exp) * numLn(x) / math.Ln10
	if f > 3*math.MaxInt16*4 {
		return nil, errorf("value overflows numeric format")
	}
	if f+1 < -float64(rscale) {
		return &numeric{u: new(big.Int), scale: rscale}, nil
	}
	if f >= numMaxWeightDigs-1e-6 {
		// at least numMaxWeightDigs+1 digits before the point
		return nil, errorf("value overflows numeric format")
	}
	if f+float64(rscale) > MaxEvalDigits {
		// Postgres computes all of these digits (up to 131,072 before
		// the point); volt refuses before computing them.
		return nil, costErrorf("too costly to evaluate: numeric power would have about %.0f digits (volt evaluates at most %d)", f+float64(rscale), MaxEvalDigits)
	}
	abs := exp
	if abs < 0 {
		abs = -abs
	}
	if float64(x.scale)*float64(abs)+math.Abs(f) < 5000 {
		num := new(big.Int).Exp(x.u, big.NewInt(abs), nil)
		den := pow10(x.scale * int(abs))
		if exp < 0 {
			num, den = den, num
		}
		return &numeric{u: roundDiv(new(big.Int).Mul(num, pow10(rscale)), den), scale: rscale}, nil
	}
	prec := uint(math.Abs(f)+float64(rscale)+40)*4 + 64
	bx := new(big.Float).SetPrec(prec).Quo(new(big.Float).SetPrec(prec).SetInt(x.u), new(big.Float).SetPrec(prec).SetInt(pow10(x.scale)))
	return floatToScale(bigPowInt(bx, exp, prec), rscale, prec), nil
}

// floatToScale rounds f half away from zero to scale decimal places.
func floatToScale(f *big.Float, scale int, prec uint) *numeric {
	v := new(big.Float).SetPrec(prec+uint(scale)*4).Mul(f, new(big.Float).SetInt(pow10(scale)))
	half := big.NewFloat(0.5)
	if v.Sign() < 0 {
		v.Sub(v, half)
	} else {
		v.Add(v, half)
	}
	u, _ := v.Int(nil)
	return &numeric{u: u, scale: scale}
}
