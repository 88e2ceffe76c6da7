package where

import (
	"math"
	"math/big"
)

// High-precision ln and exp on big.Float, so that float8 ^ float8 is
// correctly rounded (as glibc's pow is) and numeric ^ numeric gets its
// digits right.

func newFloat(prec uint) *big.Float { return new(big.Float).SetPrec(prec) }

// bigLn2 returns ln 2 at precision prec.
func bigLn2(prec uint) *big.Float {
	third := newFloat(prec).Quo(newFloat(prec).SetInt64(1), newFloat(prec).SetInt64(3))
	return atanhSeries(third, prec)
}

// atanhSeries returns 2*atanh(z) = ln((1+z)/(1-z)) for small |z|.
func atanhSeries(z *big.Float, prec uint) *big.Float {
	sum := newFloat(prec).Set(z)
	z2 := newFloat(prec).Mul(z, z)
	term := newFloat(prec).Set(z)
	eps := newFloat(prec).SetMantExp(big.NewFloat(1), -int(prec)-4)
	for k := int64(3); ; k += 2 {
		term.Mul(term, z2)
		t := newFloat(prec).Quo(term, newFloat(prec).SetInt64(k))
		sum.Add(sum, t)
		if t.Sign() == 0 || newFloat(prec).Abs(t).Cmp(eps) < 0 {
			break
		}
	}
	return sum.Mul(sum, newFloat(prec).SetInt64(2))
}

// bigLn returns ln x for x > 0.
func bigLn(x *big.Float, prec uint) *big.Float {
	wp := prec + 32
	m := newFloat(wp)
	e := x.MantExp(m) // x = m * 2^e, m in [0.5, 1)
	if m.Cmp(big.NewFloat(math.Sqrt2/2)) < 0 {
		m.SetMantExp(m, 1)
		e--
	}
	one := newFloat(wp).SetInt64(1)
	z := newFloat(wp).Quo(newFloat(wp).Sub(m, one), newFloat(wp).Add(m, one))
	r := atanhSeries(z, wp)
	r.Add(r, newFloat(wp).Mul(bigLn2(wp), newFloat(wp).SetInt64(int64(e))))
	return newFloat(prec).Set(r)
}

// bigExp returns e^x; |x| must be small enough for the result's exponent
// to fit an int32 (callers check magnitude first).
func bigExp(x *big.Float, prec uint) *big.Float {
	wp := prec + 64
	ln2 := bigLn2(wp)
	nf, _ := newFloat(wp).Quo(x, ln2).Float64()
	n := int64(math.Round(nf))
	r := newFloat(wp).Sub(x, newFloat(wp).Mul(ln2, newFloat(wp).SetInt64(n)))
	const halvings = 16
	r.SetMantExp(r, -halvings)
	sum := newFloat(wp).SetInt64(1)
	term := newFloat(wp).SetInt64(1)
	eps := newFloat(wp).SetMantExp(big.NewFloat(1), -int(wp)-4)
	for k := int64(1); ; k++ {
		term.Mul(term, r)
		term.Quo(term, newFloat(wp).SetInt64(k))
		sum.Add(sum, term)
		if term.Sign() == 0 || newFloat(wp).Abs(term).Cmp(eps) < 0 {
			break
		}
	}
	for i := 0; i < halvings; i++ {
		sum.Mul(sum, sum)
	}
	sum.SetMantExp(sum, int(n))
	return newFloat(prec).Set(sum)
}

// bigPowInt returns x^n by repeated squaring at precision prec.
func bigPowInt(x *big.Float, n int64, prec uint) *big.Float {
	wp := prec + 64
	res := newFloat(wp).SetInt64(1)
	b := newFloat(wp).Set(x)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		if n&1 == 1 {
			res.Mul(res, b)
		}
		b.Mul(b, b)
		n >>= 1
	}
	if neg {
		res.Quo(newFloat(wp).SetInt64(1), res)
	}
	return newFloat(prec).Set(res)
}

// exactPow returns x^y rounded once to float64 for finite x, y with x >= 0
// or integral y (the cases dpow hands to the C library).
func exactPow(x, y float64) float64 {
	switch {
	case y == 0 || x == 1:
		return 1
	case x == 0:
		if y > 0 {
			if x == 0 && math.Signbit(x) && y == math.Floor(y) && math.Mod(y, 2) != 0 {
				return math.Copysign(0, -1)
			}
			return 0
		}
	}
	const prec = 256
	neg := x < 0 && math.Mod(y, 2) != 0
	ax := math.Abs(x)
	// magnitude estimate decides overflow/underflow without exact work
	lg := y * math.Log2(ax)
	switch {
	case lg > 1100:
		return math.Copysign(math.Inf(1), sign(neg))
	case lg < -1200:
		return math.Copysign(0, sign(neg))
	}
	bx := newFloat(prec).SetFloat64(ax)
	var r *big.Float
	if y == math.Trunc(y) && math.Abs(y) <= 1<<20 {
		r = bigPowInt(bx, int64(y), prec)
	} else {
		r = bigExp(newFloat(prec).Mul(bigLn(bx, prec), newFloat(prec).SetFloat64(y)), prec)
	}
	f, _ := r.Float64()
	return math.Copysign(f, sign(neg))
}

func sign(neg bool) float64 {
	if neg {
		return -1
	}
	return 1
}
