package where

import "math/big"

// dateArith builds the date/time operators of plusSigs and minusSigs.
func dateArith(op string, l, r Type) (Type, binFn) {
	sign := int64(1)
	if op == "-" {
		sign = -1
	}
	switch {
	case l == tDate && r == tInt4:
		return tDate, func(a, b any) (any, error) { return dateAddDays(a.(int64), sign*b.(int64)) }
	case l == tInt4 && r == tDate:
		return tDate, func(a, b any) (any, error) { return dateAddDays(b.(int64), a.(int64)) }
	case l == tDate && r == tDate:
		return tInt4, dateDiff
	case l == tInterval && r == tInterval:
		return tInterval, func(a, b any) (any, error) { return addInterval(a.(interval), b.(interval), sign) }
	case l == tTime && r == tTime:
		return tInterval, func(a, b any) (any, error) { return interval{usec: a.(int64) - b.(int64)}, nil }
	case l == tTime && r == tInterval:
		return tTime, func(a, b any) (any, error) { return timeAddInterval(a.(int64), b.(interval), sign), nil }
	case l == tInterval && r == tTime:
		return tTime, func(a, b any) (any, error) { return timeAddInterval(b.(int64), a.(interval), 1), nil }
	case l == tDate && r == tTime:
		return tTimestamp, func(a, b any) (any, error) { return dateAddTime(a.(int64), b.(int64)) }
	case l == tTime && r == tDate:
		return tTimestamp, func(a, b any) (any, error) { return dateAddTime(b.(int64), a.(int64)) }
	case r == tInterval:
		return tsResult(l), func(a, b any) (any, error) { return tsAddInterval(asTimestamp(l, a), b.(interval), sign) }
	case l == tInterval:
		return tsResult(r), func(a, b any) (any, error) { return tsAddInterval(asTimestamp(r, b), a.(interval), 1) }
	}
	return tInterval, func(a, b any) (any, error) { return tsDiff(a.(int64), b.(int64)) }
}

func tsResult(t Type) Type {
	if t == tDate {
		return tTimestamp
	}
	return t
}

func asTimestamp(t Type, v any) int64 {
	if t == tDate {
		return dateToTimestamp(v.(int64))
	}
	return v.(int64)
}

func dateAddDays(d, n int64) (any, error) {
	if d == posInf || d == negInf {
		return d, nil
	}
	r := d + n
	if r < minDateDays || r > maxDateDays {
		return nil, errorf("date out of range")
	}
	return r, nil
}

func dateDiff(a, b any) (any, error) {
	x, y := a.(int64), b.(int64)
	if x == posInf || x == negInf || y == posInf || y == negInf {
		return nil, errorf("cannot subtract infinite dates")
	}
	return x - y, nil
}

func dateAddTime(d, t int64) (any, error) {
	if d == posInf || d == negInf {
		return d, nil
	}
	return checkTimestamp(dateToTimestamp(d) + t)
}

func checkTimestamp(us int64) (any, error) {
	days := floorDiv(us, usecPerDay)
	if days < minDateDays || days >= maxTsDays {
		return nil, errorf("timestamp out of range")
	}
	return us, nil
}

func timeAddInterval(t int64, iv interval, sign int64) int64 {
	r := (t + sign*iv.usec) % usecPerDay
	if r < 0 {
		r += usecPerDay
	}
	return r
}

// tsAddInterval is timestamp_pl_interval: months with end-of-month
// clamping, then days, then microseconds (UTC, so days are 24 h).
func tsAddInterval(ts int64, iv interval, sign int64) (any, error) {
	if ts == posInf || ts == negInf {
		return ts, nil
	}
	if iv.months != 0 {
		days := floorDiv(ts, usecPerDay)
		tod := ts - days*usecPerDay
		y, m, d := civilFromDays(days)
		mm := y*12 + (m - 1) + sign*iv.months
		y, m = floorDiv(mm, 12), mm-floorDiv(mm, 12)*12+1
		d = min(d, daysInMonth(y, m))
		if y < -4713 || y > 294277 {
			return nil, errorf("timestamp out of range")
		}
		ts = daysFromCivil(y, m, d)*usecPerDay + tod
	}
	r := new(big.Int).Mul(big.NewInt(sign*iv.days), big.NewInt(usecPerDay))
	r.Add(r, big.NewInt(ts))
	r.Add(r, big.NewInt(sign*iv.usec))
	if !r.IsInt64() {
		return nil, errorf("timestamp out of range")
	}
	return checkTimestamp(r.Int64())
}

// tsDiff is timestamp_mi: the difference in µs, then justify_hours.
func tsDiff(a, b int64) (any, error) {
	if a == posInf || a == negInf || b == posInf || b == negInf {
		return nil, errorf("cannot subtract infinite timestamps")
	}
	us := a - b
	iv := interval{days: us / usecPerDay, usec: us % usecPerDay}
	if iv.days > 0 && iv.usec < 0 {
		iv.usec += usecPerDay
		iv.days--
	} else if iv.days < 0 && iv.usec > 0 {
		iv.usec -= usecPerDay
		iv.days++
	}
	return iv, nil
}
