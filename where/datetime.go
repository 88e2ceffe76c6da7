package where

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Dates are days since 1970-01-01; timestamps (with or without time zone,
// always UTC here) are microseconds since 1970-01-01 00:00; times are
// microseconds since midnight. ±infinity use the int64 extremes.
const (
	posInf      = math.MaxInt64
	negInf      = math.MinInt64
	usecPerDay  = int64(86400_000_000)
	usecPerHour = int64(3600_000_000)
	usecPerMin  = int64(60_000_000)
	usecPerSec  = int64(1_000_000)
	minDateDays = -2440588             // 4714-11-24 BC (Julian day 0)
	maxDateDays = 2147483494 - 2440588 // Postgres' DATE_END_JULIAN
	maxTsDays   = 109203489 - 2440588  // 294277-01-01 (TIMESTAMP_END_JULIAN)
)

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// daysFromCivil converts a proleptic Gregorian date (astronomical year) to days since 1970-01-01.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func daysInMonth(y, m int64) int64 {
	switch m {
	case 4, 6, 9, 11:
		return 30
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 31
}

// dtParts is a parsed date/time literal.
type dtParts struct {
	special  int64 // posInf, negInf or 0
	days     int64
	usec     int64 // time of day
	hasTime  bool
	hasDate  bool
	tzOffset int64 // seconds east of UTC
	hasTZ    bool
}

// specialDT recognises infinity/epoch and rejects non-deterministic words.
func specialDT(s string) (dtParts, bool, error) {
	switch strings.ToLower(s) {
	case "infinity", "+infinity":
		return dtParts{special: posInf}, true, nil
	case "-infinity":
		return dtParts{special: negInf}, true, nil
	case "epoch":
		return dtParts{hasDate: true, hasTime: true}, true, nil
	case "now", "today", "tomorrow", "yesterday", "allballs":
		return dtParts{}, true, errorf("non-deterministic date/time literal %q is not supported", s)
	}
	return dtParts{}, false, nil
}

// parseDateTime parses the ISO-style date/time literals Postgres prints
// (and the common ISO 8601 variants): [date][ |T][time][tz][ BC].
func parseDateTime(s, typ string) (dtParts, error) {
	t := strings.TrimSpace(s)
	if p, ok, err := specialDT(t); ok {
		return p, err
	}
	bad := errorf("invalid input syntax for type %s: %q", typ, s)
	var p dtParts
	bc := false
	if u := strings.ToUpper(t); strings.HasSuffix(u, " BC") || strings.HasSuffix(u, " AD") {
		bc = strings.HasSuffix(u, " BC")
		t = strings.TrimSpace(t[:len(t)-3])
	}
	rest := t
	if len(t) >= 8 && strings.Count(t[:min(len(t), 12)], "-") >= 2 && t[0] != '-' {
		i := strings.IndexAny(t, " Tt")
		if i < 0 {
			i = len(t)
		}
		days, err := parseYMD(t[:i], bc)
		if err != nil {
			return p, bad
		}
		p.days, p.hasDate, rest = days, true, strings.TrimSpace(strings.TrimLeft(t[i:], "Tt "))
	} else if bc {
		return p, bad
	}
	if rest == "" {
		return p, nil
	}
	timeStr, tz := splitTZ(rest)
	if timeStr != "" {
		us, err := parseClock(timeStr)
		if err != nil {
			return p, bad
		}
		p.usec, p.hasTime = us, true
	}
	if tz != "" {
		off, err := parseTZ(tz)
		if err != nil {
			return p, err
		}
		p.tzOffset, p.hasTZ = off, true
	}
	return p, nil
}

func parseYMD(s string, bc bool) (int64, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) < 4 || len(parts[1]) > 2 || len(parts[2]) > 2 {
		return 0, errorf("bad date")
	}
	var v [3]int64
	for i, x := range parts {
		if x == "" || !allDigits(x) || len(x) > 9 {
			return 0, errorf("bad date")
		}
		v[i], _ = strconv.ParseInt(x, 10, 64)
	}
	y, m, d := v[0], v[1], v[2]
	if y == 0 || m < 1 || m > 12 || d < 1 || d > daysInMonth(astroYear(y, bc), m) {
		return 0, errorf("bad date")
	}
	return daysFromCivil(astroYear(y, bc), m, d), nil
}

func astroYear(y int64, bc bool) int64 {
	if bc {
		return 1 - y
	}
	return y
}

// splitTZ separates a trailing zone (Z, UTC, GMT, ±hh[:mm[:ss]]) from a time.
func splitTZ(s string) (string, string) {
	u := strings.ToUpper(s)
	for _, z := range []string{"UTC", "GMT", "Z"} {
		if strings.HasSuffix(u, z) {
			return strings.TrimSpace(s[:len(s)-len(z)]), z
		}
	}
	if i := strings.LastIndexAny(s, "+-"); i >= 0 {
		return strings.TrimSpace(s[:i]), s[i:]
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }); i >= 0 {
		return strings.TrimSpace(s[:i]), s[i:]
	}
	return s, ""
}

func parseTZ(tz string) (int64, error) {
	switch strings.ToUpper(tz) {
	case "Z", "UTC", "GMT":
		return 0, nil
	}
	if tz[0] != '+' && tz[0] != '-' {
		return 0, errorf("time zone %q is not supported (use a numeric offset or UTC)", tz)
	}
	body := tz[1:]
	var h, m, sec int64
	var err error
	switch {
	case strings.Contains(body, ":"):
		f := strings.Split(body, ":")
		if len(f) > 3 {
			return 0, errorf("invalid time zone %q", tz)
		}
		vals := []*int64{&h, &m, &sec}
		for i, x := range f {
			if *vals[i], err = strconv.ParseInt(x, 10, 64); err != nil || !allDigits(x) {
				return 0, errorf("invalid time zone %q", tz)
			}
		}
	case allDigits(body) && len(body) <= 2 && body != "":
		h, _ = strconv.ParseInt(body, 10, 64)
	case allDigits(body) && len(body) == 4:
		h, _ = strconv.ParseInt(body[:2], 10, 64)
		m, _ = strconv.ParseInt(body[2:], 10, 64)
	default:
		return 0, errorf("invalid time zone %q", tz)
	}
	if h > 15 || m > 59 || sec > 59 {
		return 0, errorf("time zone displacement out of range: %q", tz)
	}
	off := h*3600 + m*60 + sec
	if tz[0] == '-' {
		off = -off
	}
	return off, nil
}

// parseClock parses hh:mm[:ss[.ffffff]] into microseconds since midnight.
func parseClock(s string) (int64, error) {
	main, frac, hasFrac := strings.Cut(s, ".")
	f := strings.Split(main, ":")
	if len(f) < 2 || len(f) > 3 {
		return 0, errorf("bad time")
	}
	var v [3]int64
	for i, x := range f {
		if x == "" || len(x) > 2 || !allDigits(x) {
			return 0, errorf("bad time")
		}
		v[i], _ = strconv.ParseInt(x, 10, 64)
	}
	var us int64
	if hasFrac {
		if len(f) != 3 || frac == "" || !allDigits(frac) {
			return 0, errorf("bad time")
		}
		fv, _ := strconv.ParseFloat("0."+frac, 64)
		us = int64(math.RoundToEven(fv * 1e6))
	}
	h, m, sec := v[0], v[1], v[2]
	if h > 24 || m > 59 || sec > 60 || h == 24 && (m > 0 || sec > 0 || us > 0) {
		return 0, errorf("bad time")
	}
	return h*usecPerHour + m*usecPerMin + sec*usecPerSec + us, nil
}

func parseDate(s string) (int64, error) {
	p, err := parseDateTime(s, "date")
	if err != nil {
		return 0, err
	}
	if p.special != 0 {
		return p.special, nil
	}
	if !p.hasDate || p.days < minDateDays || p.days > maxDateDays {
		return 0, errorf("invalid input syntax for type date: %q", s)
	}
	return p.days, nil
}

func parseTime(s string) (int64, error) {
	p, err := parseDateTime(s, "time without time zone")
	if err != nil {
		return 0, err
	}
	if !p.hasTime || p.special != 0 {
		return 0, errorf("invalid input syntax for type time: %q", s)
	}
	return p.usec, nil
}

// parseTimestamp implements timestamp_in (withTZ false: zones are ignored)
// and timestamptz_in (zones applied; none means UTC).
func parseTimestamp(s string, withTZ bool) (int64, error) {
	typ := "timestamp"
	if withTZ {
		typ = "timestamp with time zone"
	}
	p, err := parseDateTime(s, typ)
	if err != nil {
		return 0, err
	}
	if p.special != 0 {
		return p.special, nil
	}
	if !p.hasDate {
		return 0, errorf("invalid input syntax for type %s: %q", typ, s)
	}
	us := p.days*usecPerDay + p.usec
	if withTZ {
		us -= p.tzOffset * usecPerSec
	}
	if p.days < minDateDays || floorDiv(us, usecPerDay) >= maxTsDays {
		return 0, errorf("timestamp out of range: %q", s)
	}
	return us, nil
}

func formatDate(d int64) string {
	switch d {
	case posInf:
		return "infinity"
	case negInf:
		return "-infinity"
	}
	y, m, dd := civilFromDays(d)
	return withEra(fmt.Sprintf("%04d-%02d-%02d", eraYear(y), m, dd), y)
}

func eraYear(y int64) int64 {
	if y <= 0 {
		return 1 - y
	}
	return y
}

func withEra(s string, y int64) string {
	if y <= 0 {
		return s + " BC"
	}
	return s
}

func formatClock(us int64) string {
	h, m, s, f := us/usecPerHour, us/usecPerMin%60, us/usecPerSec%60, us%usecPerSec
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	if f != 0 {
		out += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
	}
	return out
}

// formatTimestamp implements timestamp_out / timestamptz_out (ISO, UTC).
func formatTimestamp(us int64, withTZ bool) string {
	switch us {
	case posInf:
		return "infinity"
	case negInf:
		return "-infinity"
	}
	days := floorDiv(us, usecPerDay)
	y, m, d := civilFromDays(days)
	s := fmt.Sprintf("%04d-%02d-%02d %s", eraYear(y), m, d, formatClock(us-days*usecPerDay))
	if withTZ {
		s += "+00"
	}
	return withEra(s, y)
}
