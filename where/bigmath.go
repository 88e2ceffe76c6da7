package where

import (
	"math"
	"math/big"
	"math/bits"
	"sync"
)

// High-precision ln and exp on big.Float, so that float8 ^ float8 is
// correctly rounded (as glibc's pow is) and numeric ^ numeric gets its
// digits right.

func newFloat(prec uint) *big.Float { return new(big.Float).SetPrec(prec) }

// ln2Cache holds ln 2 at the highest precision asked for so far: the
// series costs thousands of terms at the precisions numeric ^ needs, and
// every ln and exp uses it.
var ln2Cache struct {
	sync.Mutex
	v *big.Float
}

// bigLn2 returns ln 2 at precision prec.
func bigLn2(prec uint) *big.Float {
	ln2Cache.Lock()
	defer ln2Cache.Unlock()
	if ln2Cache.v == nil || ln2Cache.v.Prec() < prec+64 {
		p := max(prec+64, 1024)
		p = 1 << bits.Len(p) // round up, so growing precisions recompute rarely
		// ln 2 = 18 atanh(1/26) - 2 atanh(1/4801) + 8 atanh(1/8749), in
		// fixed point with p+32 fraction bits.
		sum := new(big.Int).Mul(big.NewInt(18), atanhInv(26, p+32))
		sum.Sub(sum, new(big.Int).Mul(big.NewInt(2), atanhInv(4801, p+32)))
		sum.Add(sum, new(big.Int).Mul(big.NewInt(8), atanhInv(8749, p+32)))
		ln2Cache.v = newFloat(p).SetMantExp(newFloat(p+64).SetInt(sum), -int(p+32))
	}
	return newFloat(prec).Set(ln2Cache.v)
}

// atanhInv returns atanh(1/k) * 2^p, truncated, for k > 1: the series
// sum of 1/((2j+1) k^(2j+1)) in integers (each term one division by a
// small number).
func atanhInv(k int64, p uint) *big.Int {
	pow := new(big.Int).Lsh(big.NewInt(1), p)
	pow.Quo(pow, big.NewInt(k))
	sum := new(big.Int).Set(pow)
	kk, t := big.NewInt(k*k), new(big.Int)
	for j := int64(3); pow.Sign() != 0; j += 2 {
		pow.Quo(pow, kk)
		sum.Add(sum, t.Quo(pow, big.NewInt(j)))
	}
	return sum
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

// bigLn returns ln x for x > 0, to prec bits relative to the result: with
// x = m * 2^e (m in [sqrt(2)/2, sqrt(2))), ln m comes from Newton's
// iteration y += m*exp(-y) - 1 with the precision doubling each step, so
// it costs about two exps at full precision.
func bigLn(x *big.Float, prec uint) *big.Float {
	m := newFloat(x.Prec() + 1)
	e := x.MantExp(m) // x = m * 2^e, m in [0.5, 1)
	if m.Cmp(big.NewFloat(math.Sqrt2/2)) < 0 {
		m.SetMantExp(m, 1)
		e--
	}
	// ln m is about m-1: as many more bits as m-1 has leading zeros keep
	// the result's relative precision.
	wp := prec + 64
	if d := newFloat(wp).Sub(m, big.NewFloat(1)); d.Sign() != 0 {
		wp += uint(max(0, -d.MantExp(nil)))
	} else if e == 0 {
		return newFloat(prec) // ln 1
	}
	one := big.NewFloat(1)
	var y *big.Float
	if wp <= 4096 {
		// Few enough bits for the series of atanh((m-1)/(m+1)) (at
		// least 5 bits a term) to beat Newton's exps.
		y = atanhSeries(newFloat(wp).Quo(newFloat(wp).Sub(m, one), newFloat(wp).Add(m, one)), wp)
	} else {
		mf, _ := m.Float64()
		y = newFloat(wp).SetFloat64(math.Log(mf))
		for p := uint(40); p < 2*wp; p *= 2 {
			q := min(2*p, wp) + 16
			t := bigExp(newFloat(q).Neg(y), q)
			t.Mul(t, m)
			t.Sub(t, one)
			y = newFloat(q).Add(y, t)
		}
	}
	r := newFloat(wp).Mul(bigLn2(wp+64), newFloat(wp).SetInt64(int64(e)))
	r.Add(r, y)
	return newFloat(prec).Set(r)
}

// bigExp returns e^x; |x| must be small enough for the result's exponent
// to fit an int32 (callers check magnitude first). x is reduced by a
// multiple of ln 2 and then halved h times (h about sqrt(prec)/2), so the
// Taylor series needs few terms; squaring h times restores it.
func bigExp(x *big.Float, prec uint) *big.Float {
	h := uint(math.Sqrt(float64(prec)))/2 + 4
	wp := prec + h + 64
	ln2 := bigLn2(wp + 64)
	nf, _ := newFloat(wp).Quo(x, ln2).Float64()
	n := int64(math.Round(nf))
	r := newFloat(wp).Sub(x, newFloat(wp+64).Mul(ln2, newFloat(wp).SetInt64(n)))
	r.SetMantExp(r, -int(h))
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
	for i := uint(0); i < h; i++ {
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
