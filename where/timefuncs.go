package where

import (
	"math"
	"strings"
	"time"
)

// justify builds justify_days, justify_hours and justify_interval.
func (tr *transformer) justify(name string, args []node, loc int32) (node, error) {
	if len(args) != 1 || !canImplicit(args[0].typ(), tInterval) {
		return nil, errAt(loc, "function %s does not exist", sigString(name, args))
	}
	arg, err := tr.coerce(args[0], tInterval, loc)
	if err != nil {
		return nil, err
	}
	fn := map[string]func(interval) (interval, error){
		"justify_days": justifyDays, "justify_hours": justifyHours, "justify_interval": justifyInterval,
	}[name]
	return fold(&funcNode{name: name, args: []node{arg}, t: tInterval, strict: true,
		fn: func(v []any) (any, error) { return fn(v[0].(interval)) }}, loc)
}

func checkIvDays(iv interval) (interval, error) {
	if iv.days > math.MaxInt32 || iv.days < math.MinInt32 || iv.months > math.MaxInt32 || iv.months < math.MinInt32 {
		return interval{}, errorf("interval out of range")
	}
	return iv, nil
}

// justifyHours moves whole days out of the time field.
func justifyHours(iv interval) (interval, error) {
	iv.days += iv.usec / usecPerDay
	iv.usec %= usecPerDay
	if iv.days > 0 && iv.usec < 0 {
		iv.usec += usecPerDay
		iv.days--
	} else if iv.days < 0 && iv.usec > 0 {
		iv.usec -= usecPerDay
		iv.days++
	}
	return checkIvDays(iv)
}

// justifyDays moves whole 30-day months out of the days field.
func justifyDays(iv interval) (interval, error) {
	iv.months += iv.days / 30
	iv.days %= 30
	if iv.months > 0 && iv.days < 0 {
		iv.days += 30
		iv.months--
	} else if iv.months < 0 && iv.days > 0 {
		iv.days -= 30
		iv.months++
	}
	return checkIvDays(iv)
}

// justifyInterval does both, with signs made consistent across all fields.
func justifyInterval(iv interval) (interval, error) {
	iv.days += iv.usec / usecPerDay
	iv.usec %= usecPerDay
	if _, err := checkIvDays(iv); err != nil {
		return iv, err
	}
	iv.months += iv.days / 30
	iv.days %= 30
	if iv.months > 0 && (iv.days < 0 || iv.days == 0 && iv.usec < 0) {
		iv.days += 30
		iv.months--
	} else if iv.months < 0 && (iv.days > 0 || iv.days == 0 && iv.usec > 0) {
		iv.days -= 30
		iv.months++
	}
	if iv.days > 0 && iv.usec < 0 {
		iv.usec += usecPerDay
		iv.days--
	} else if iv.days < 0 && iv.usec > 0 {
		iv.usec -= usecPerDay
		iv.days++
	}
	return checkIvDays(iv)
}

var timezoneSigs = []sig{{tText, tTimestamp}, {tText, tTimestamptz}}

// timezone builds timezone(zone, ts) (also written ts AT TIME ZONE zone).
// The zone must be a constant naming an IANA zone (Area/City) or UTC/GMT/Z:
// Postgres' abbreviation table and POSIX zone specs are not reproduced,
// so other spellings are rejected rather than evaluated differently.
func (tr *transformer) timezone(args []node, loc int32) (node, error) {
	if len(args) != 2 {
		return nil, errAt(loc, "function %s does not exist", sigString("timezone", args))
	}
	s, ok, _ := resolveOp(timezoneSigs, args[0].typ(), args[1].typ())
	if !ok {
		return nil, errAt(loc, "function %s does not exist", sigString("timezone", args))
	}
	zone, err := tr.coerce(args[0], tText, loc)
	if err != nil {
		return nil, err
	}
	ts, err := tr.coerce(args[1], s.r, loc)
	if err != nil {
		return nil, err
	}
	zc, isConst := zone.(*constNode)
	if !isConst {
		return nil, errAt(loc, "the time zone of timezone() / AT TIME ZONE must be a constant")
	}
	res := tTimestamptz
	if s.r == tTimestamptz {
		res = tTimestamp
	}
	if zc.null {
		return &constNode{t: res, null: true, loc: loc}, nil
	}
	tz, err := loadZone(zc.v.(string))
	if err != nil {
		return nil, withLoc(err, loc)
	}
	fn := func(v []any) (any, error) { return utcToLocal(v[1].(int64), tz) }
	if res == tTimestamptz {
		fn = func(v []any) (any, error) { return localToUTC(v[1].(int64), tz) }
	}
	return fold(&funcNode{name: "timezone", args: []node{zone, ts}, t: res, strict: true, fn: fn}, loc)
}

// loadZone resolves the zone names whose meaning in Postgres is certain.
func loadZone(name string) (*time.Location, error) {
	switch strings.ToLower(name) {
	case "utc", "gmt", "z":
		return time.UTC, nil
	}
	lower := strings.ToLower(name)
	if !strings.Contains(name, "/") || strings.HasPrefix(lower, "posix/") || strings.HasPrefix(lower, "right/") {
		return nil, errorf("time zone %q is not supported (use an IANA name like Europe/Berlin, or UTC)", name)
	}
	tz, err := time.LoadLocation(name)
	if err != nil {
		return nil, errorf("time zone %q not recognized", name)
	}
	return tz, nil
}

// utcToLocal is timestamptz_zone: the wall-clock time in tz.
func utcToLocal(us int64, tz *time.Location) (any, error) {
	if us == posInf || us == negInf {
		return us, nil
	}
	_, off := time.Unix(floorDiv(us, usecPerSec), 0).In(tz).Zone()
	return checkTimestamp(us + int64(off)*usecPerSec)
}

// localToUTC is timestamp_zone: the instant at which tz shows this wall
// time, resolving DST gaps and overlaps as DetermineTimeZoneOffset does.
func localToUTC(us int64, tz *time.Location) (any, error) {
	if us == posInf || us == negInf {
		return us, nil
	}
	t := floorDiv(us, usecPerSec)
	prev := time.Unix(t-86400, 0).In(tz)
	_, before := prev.Zone()
	off := before
	if _, end := prev.ZoneBounds(); !end.IsZero() {
		boundary := end.Unix()
		_, after := end.In(tz).Zone()
		bt, at := t-int64(before), t-int64(after)
		switch {
		case bt < boundary && at < boundary:
			off = before
		case bt >= boundary && at >= boundary:
			off = after
		case before > after:
			off = after
		}
	}
	return checkTimestamp(us - int64(off)*usecPerSec)
}
