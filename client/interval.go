package client

import (
	"strconv"
	"strings"
)

// Interval is a value of an interval column, in Postgres' own units:
// months, days and microseconds are kept apart because their lengths vary.
type Interval struct {
	Months       int32
	Days         int32
	Microseconds int64
}

// ParseInterval parses the ISO 8601 form that IntervalStyle = iso_8601
// prints: "P1Y2M3DT4H5M6.5S", "P-1Y-2M", "PT-0.000001S", "PT0S". Weeks
// ("P2W") are accepted too.
func ParseInterval(s string) (Interval, error) {
	var iv Interval
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return iv, invalid("interval", s)
	}
	inTime := false
	for rest != "" {
		if rest[0] == 'T' && !inTime {
			inTime, rest = true, rest[1:]
			continue
		}
		i := strings.IndexFunc(rest, func(r rune) bool { return r >= 'A' && r <= 'Z' })
		if i <= 0 {
			return iv, invalid("interval", s)
		}
		if err := iv.add(rest[:i], rest[i], inTime); err != nil {
			return iv, invalid("interval", s)
		}
		rest = rest[i+1:]
	}
	return iv, nil
}

// add adds the field num×unit to iv.
func (iv *Interval) add(num string, unit byte, inTime bool) error {
	if inTime && unit == 'S' {
		us, err := parseMicros(num)
		iv.Microseconds += us
		return err
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return err
	}
	switch {
	case !inTime && unit == 'Y':
		iv.Months += int32(n * 12)
	case !inTime && unit == 'M':
		iv.Months += int32(n)
	case !inTime && unit == 'W':
		iv.Days += int32(n * 7)
	case !inTime && unit == 'D':
		iv.Days += int32(n)
	case inTime && unit == 'H':
		iv.Microseconds += n * 3600e6
	case inTime && unit == 'M':
		iv.Microseconds += n * 60e6
	default:
		return ErrInvalidValue
	}
	return nil
}

// parseMicros parses "[-]seconds[.fraction]" into microseconds exactly.
func parseMicros(num string) (int64, error) {
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(strings.TrimPrefix(num, "-"), "+")
	ip, fp, _ := strings.Cut(num, ".")
	if ip == "" || !allDigits(ip) || !allDigits(fp) || len(fp) > 6 {
		return 0, ErrInvalidValue
	}
	secs, err := strconv.ParseInt(ip, 10, 64)
	if err != nil {
		return 0, err
	}
	frac, _ := strconv.ParseInt((fp + "000000")[:6], 10, 64)
	us := secs*1e6 + frac
	if neg {
		us = -us
	}
	return us, nil
}

// String returns iv in the ISO 8601 form Postgres prints.
func (iv Interval) String() string {
	if iv == (Interval{}) {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	field := func(n int64, unit byte) {
		if n != 0 {
			b.WriteString(strconv.FormatInt(n, 10))
			b.WriteByte(unit)
		}
	}
	field(int64(iv.Months/12), 'Y')
	field(int64(iv.Months%12), 'M')
	field(int64(iv.Days), 'D')
	if iv.Microseconds == 0 {
		return b.String()
	}
	us := iv.Microseconds
	b.WriteByte('T')
	field(us/3600e6, 'H')
	field(us%3600e6/60e6, 'M')
	if sec := us % 60e6; sec != 0 {
		b.WriteString(formatMicros(sec))
		b.WriteByte('S')
	}
	return b.String()
}

// formatMicros prints microseconds as seconds with a trimmed fraction.
func formatMicros(us int64) string {
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	s := sign + strconv.FormatInt(us/1e6, 10)
	if f := us % 1e6; f != 0 {
		s += "." + strings.TrimRight(strconv.FormatInt(f+1e6, 10)[1:], "0")
	}
	return s
}
