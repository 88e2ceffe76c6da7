package where

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// interval mirrors Postgres' Interval: months, days and microseconds.
type interval struct {
	months, days int64
	usec         int64
}

// span is the value interval_cmp orders by: (months*30 + days) days + usec.
func (iv interval) span() *big.Int {
	d := big.NewInt(iv.months*30 + iv.days)
	d.Mul(d, big.NewInt(usecPerDay))
	return d.Add(d, big.NewInt(iv.usec))
}

func cmpInterval(a, b interval) int { return a.span().Cmp(b.span()) }

// formatInterval implements interval_out with IntervalStyle iso_8601.
func formatInterval(iv interval) string {
	if iv == (interval{}) {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	part := func(v int64, unit byte) {
		if v != 0 {
			fmt.Fprintf(&b, "%d%c", v, unit)
		}
	}
	part(iv.months/12, 'Y')
	part(iv.months%12, 'M')
	part(iv.days, 'D')
	h, m := iv.usec/usecPerHour, iv.usec/usecPerMin%60
	s, f := iv.usec/usecPerSec%60, iv.usec%usecPerSec
	if iv.usec != 0 {
		b.WriteByte('T')
	}
	part(h, 'H')
	part(m, 'M')
	if s != 0 || f != 0 {
		if s < 0 || f < 0 {
			b.WriteByte('-')
		}
		fmt.Fprintf(&b, "%d", abs64(s))
		if f != 0 {
			b.WriteString(strings.TrimRight(fmt.Sprintf(".%06d", abs64(f)), "0"))
		}
		b.WriteByte('S')
	}
	return b.String()
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// ivBuilder accumulates interval fields with Postgres' fraction cascading.
type ivBuilder struct {
	months, days float64
	usec         float64
}

func (b *ivBuilder) add(val float64, unit string) bool {
	whole, frac := math.Modf(val)
	switch unit {
	case "millennium", "millennia", "mil", "mils":
		b.months += whole*12000 + math.RoundToEven(frac*12000)
	case "century", "centuries", "c", "cent":
		b.months += whole*1200 + math.RoundToEven(frac*1200)
	case "decade", "decades", "dec", "decs":
		b.months += whole*120 + math.RoundToEven(frac*120)
	case "year", "years", "y", "yr", "yrs":
		b.months += whole*12 + math.RoundToEven(frac*12)
	case "month", "months", "mon", "mons":
		b.months += whole
		b.fracDays(frac * 30)
	case "week", "weeks", "w":
		b.days += whole * 7
		b.fracDays(frac * 7)
	case "day", "days", "d":
		b.days += whole
		b.usec += frac * float64(usecPerDay)
	case "hour", "hours", "h", "hr", "hrs":
		b.usec += val * float64(usecPerHour)
	case "minute", "minutes", "m", "min", "mins":
		b.usec += val * float64(usecPerMin)
	case "second", "seconds", "s", "sec", "secs", "":
		b.usec += val * float64(usecPerSec)
	case "millisecond", "milliseconds", "ms", "msec", "msecs":
		b.usec += val * 1000
	case "microsecond", "microseconds", "us", "usec", "usecs":
		b.usec += val
	default:
		return false
	}
	return true
}

func (b *ivBuilder) fracDays(d float64) {
	whole, frac := math.Modf(d)
	b.days += whole
	b.usec += frac * float64(usecPerDay)
}

func (b *ivBuilder) result(neg bool) (interval, error) {
	if neg {
		b.months, b.days, b.usec = -b.months, -b.days, -b.usec
	}
	us := math.RoundToEven(b.usec)
	if math.Abs(b.months) > math.MaxInt32 || math.Abs(b.days) > math.MaxInt32 || math.Abs(us) > 9.2e18 {
		return interval{}, errorf("interval out of range")
	}
	return interval{months: int64(b.months), days: int64(b.days), usec: int64(us)}, nil
}

// parseInterval implements interval_in for ISO 8601 ("P1Y2M3DT4H5M6.5S")
// and Postgres' verbose format ("1 year 2 mons -3 days 04:05:06", "@ 1 day ago").
func parseInterval(s string) (interval, error) {
	t := strings.TrimSpace(s)
	bad := errorf("invalid input syntax for type interval: %q", s)
	var iv interval
	var err error
	if strings.HasPrefix(t, "P") || strings.HasPrefix(t, "p") {
		iv, err = parseISOInterval(t[1:])
	} else {
		iv, err = parseVerboseInterval(t)
	}
	if err != nil {
		if e, ok := err.(*Error); ok && strings.Contains(e.Message, "range") {
			return interval{}, e
		}
		return interval{}, bad
	}
	return iv, nil
}

func parseISOInterval(t string) (interval, error) {
	var b ivBuilder
	inTime := false
	if t == "" {
		return interval{}, errorf("bad")
	}
	for t != "" {
		if t[0] == 'T' || t[0] == 't' {
			inTime, t = true, t[1:]
			continue
		}
		i := 0
		for i < len(t) && (t[i] == '-' || t[i] == '+' || t[i] == '.' || t[i] >= '0' && t[i] <= '9') {
			i++
		}
		if i == 0 || i == len(t) {
			return interval{}, errorf("bad")
		}
		v, err := strconv.ParseFloat(t[:i], 64)
		if err != nil {
			return interval{}, errorf("bad")
		}
		unit := map[bool]map[byte]string{
			false: {'Y': "year", 'M': "month", 'W': "week", 'D': "day"},
			true:  {'H': "hour", 'M': "minute", 'S': "second"},
		}[inTime][t[i]&^0x20]
		if unit == "" {
			return interval{}, errorf("bad")
		}
		b.add(v, unit)
		t = t[i+1:]
	}
	return b.result(false)
}

func parseVerboseInterval(t string) (interval, error) {
	var b ivBuilder
	f := strings.Fields(strings.ToLower(t))
	if len(f) > 0 && f[0] == "@" {
		f = f[1:]
	}
	neg := false
	if len(f) > 0 && f[len(f)-1] == "ago" {
		neg, f = true, f[:len(f)-1]
	}
	if len(f) == 0 {
		return interval{}, errorf("bad")
	}
	for i := 0; i < len(f); i++ {
		tok := f[i]
		if strings.Contains(tok, ":") {
			if err := b.addClock(tok); err != nil {
				return interval{}, err
			}
			continue
		}
		j := 0
		for j < len(tok) && (tok[j] == '-' || tok[j] == '+' || tok[j] == '.' || tok[j] >= '0' && tok[j] <= '9') {
			j++
		}
		v, err := strconv.ParseFloat(tok[:j], 64)
		if err != nil {
			return interval{}, errorf("bad")
		}
		unit := tok[j:]
		if unit == "" && i+1 < len(f) && !strings.ContainsAny(f[i+1][:1], "+-.0123456789") {
			i++
			unit = f[i]
		}
		if !b.add(v, unit) {
			return interval{}, errorf("bad")
		}
	}
	return b.result(neg)
}

// addClock adds a signed hh:mm[:ss[.f]] token.
func (b *ivBuilder) addClock(tok string) error {
	sign := 1.0
	if tok[0] == '-' || tok[0] == '+' {
		if tok[0] == '-' {
			sign = -1
		}
		tok = tok[1:]
	}
	parts := strings.Split(tok, ":")
	if len(parts) > 3 {
		return errorf("bad")
	}
	mult := []float64{float64(usecPerHour), float64(usecPerMin), float64(usecPerSec)}
	for i, p := range parts {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || p == "" || p[0] == '-' || p[0] == '+' || (i < len(parts)-1 && strings.Contains(p, ".")) {
			return errorf("bad")
		}
		b.usec += sign * v * mult[i]
	}
	return nil
}
