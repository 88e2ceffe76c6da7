package client

import (
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Decimal is an exact numeric value in its canonical text form ("-12.340",
// "NaN", "Infinity", "-Infinity"). It is never converted through a float
// unless Float64 is called.
type Decimal string

// ParseDecimal checks that s is a numeric value and returns it.
func ParseDecimal(s string) (Decimal, error) {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return Decimal(s), nil
	}
	if !isDecimal(s) {
		return "", invalid("numeric", s)
	}
	return Decimal(s), nil
}

// isDecimal reports whether s is [+-]digits[.digits][e[+-]digits] with at
// least one digit in the mantissa.
func isDecimal(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	ip, fp, _ := strings.Cut(mant, ".")
	if ip+fp == "" || !allDigits(ip) || !allDigits(fp) {
		return false
	}
	if hasExp {
		if exp != "" && (exp[0] == '+' || exp[0] == '-') {
			exp = exp[1:]
		}
		return exp != "" && allDigits(exp)
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns d's text.
func (d Decimal) String() string { return string(d) }

// IsNaN reports whether d is NaN.
func (d Decimal) IsNaN() bool { return d == "NaN" }

// IsInf reports whether d is an infinity: sign > 0 for +Infinity, < 0 for
// -Infinity, 0 for either.
func (d Decimal) IsInf(sign int) bool {
	return (sign >= 0 && d == "Infinity") || (sign <= 0 && d == "-Infinity")
}

// Rat returns d as an exact rational; ok is false for NaN and infinities.
func (d Decimal) Rat() (r *big.Rat, ok bool) {
	return new(big.Rat).SetString(string(d))
}

// Float64 returns the float64 nearest to d (NaN and ±Inf included).
func (d Decimal) Float64() float64 {
	f, _ := strconv.ParseFloat(string(d), 64)
	return f
}

// ParseTimestamp parses a timestamp or timestamptz in ISO DateStyle
// ("2024-01-02 03:04:05.123456+00", "0044-03-15 12:00:00 BC") and returns it
// in UTC. A value without a zone is taken as UTC.
func ParseTimestamp(s string) (time.Time, error) {
	rest, bc := strings.CutSuffix(s, " BC")
	date, clock, ok := strings.Cut(rest, " ")
	if !ok {
		date, clock, ok = strings.Cut(rest, "T")
	}
	if !ok {
		return time.Time{}, invalid("timestamp", s)
	}
	offset := 0
	if i := strings.IndexAny(clock, "+-"); i >= 0 {
		var err error
		if offset, err = parseZone(clock[i:]); err != nil {
			return time.Time{}, invalid("timestamp", s)
		}
		clock = clock[:i]
	}
	day, err := parseYMD(date, bc)
	if err != nil {
		return time.Time{}, invalid("timestamp", s)
	}
	tod, err := parseClock(clock)
	if err != nil {
		return time.Time{}, invalid("timestamp", s)
	}
	return day.Add(tod - time.Duration(offset)*time.Second), nil
}

// ParseDate parses a date in ISO DateStyle ("2024-01-02", "0001-12-31 BC")
// as midnight UTC.
func ParseDate(s string) (time.Time, error) {
	rest, bc := strings.CutSuffix(s, " BC")
	t, err := parseYMD(rest, bc)
	if err != nil {
		return time.Time{}, invalid("date", s)
	}
	return t, nil
}

// parseYMD parses "YYYY-MM-DD" (years may have more digits); BC years are
// converted to astronomical years (1 BC is year 0).
func parseYMD(s string, bc bool) (time.Time, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) < 4 || len(parts[1]) != 2 || len(parts[2]) != 2 {
		return time.Time{}, ErrInvalidValue
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || !allDigits(p) {
			return time.Time{}, ErrInvalidValue
		}
		n[i] = v
	}
	y := n[0]
	if bc {
		y = 1 - y
	}
	t := time.Date(y, time.Month(n[1]), n[2], 0, 0, 0, 0, time.UTC)
	if int(t.Month()) != n[1] || t.Day() != n[2] {
		return time.Time{}, ErrInvalidValue
	}
	return t, nil
}

// parseClock parses "HH:MM:SS[.ffffff]" (up to 24:00:00) into the time
// since midnight.
func parseClock(s string) (time.Duration, error) {
	hms, frac, hasFrac := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 || (hasFrac && (frac == "" || len(frac) > 9 || !allDigits(frac))) {
		return 0, ErrInvalidValue
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || len(p) != 2 || !allDigits(p) {
			return 0, ErrInvalidValue
		}
		n[i] = v
	}
	if n[0] > 24 || n[1] > 59 || n[2] > 60 {
		return 0, ErrInvalidValue
	}
	d := time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute + time.Duration(n[2])*time.Second
	if hasFrac {
		ns, _ := strconv.Atoi((frac + "000000000")[:9])
		d += time.Duration(ns)
	}
	if d > 24*time.Hour {
		return 0, ErrInvalidValue
	}
	return d, nil
}

// parseZone parses "+HH", "-HH:MM" or "+HH:MM:SS" into seconds east of UTC.
func parseZone(s string) (int, error) {
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	parts := strings.Split(s[1:], ":")
	if len(parts) > 3 {
		return 0, ErrInvalidValue
	}
	secs, unit := 0, 3600
	for _, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || len(p) != 2 || !allDigits(p) {
			return 0, ErrInvalidValue
		}
		secs += v * unit
		unit /= 60
	}
	return sign * secs, nil
}

// TimeOfDay is a value of a time column: the time since midnight, from 0
// to 24 hours inclusive.
type TimeOfDay time.Duration

// ParseTimeOfDay parses "HH:MM:SS[.ffffff]".
func ParseTimeOfDay(s string) (TimeOfDay, error) {
	d, err := parseClock(s)
	if err != nil {
		return 0, invalid("time", s)
	}
	return TimeOfDay(d), nil
}

// String returns t as Postgres prints it ("13:04:05.25").
func (t TimeOfDay) String() string {
	d := time.Duration(t)
	h, m := d/time.Hour, d%time.Hour/time.Minute
	s, ns := d%time.Minute/time.Second, d%time.Second
	out := pad2(int(h)) + ":" + pad2(int(m)) + ":" + pad2(int(s))
	if ns != 0 {
		out += "." + strings.TrimRight(strconv.Itoa(int(ns) + 1e9)[1:], "0")
	}
	return out
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
