package where

import (
	"math"
)

type castFn = func(any) (any, error)

func isStringType(t Type) bool { return !t.Array && t.category() == 'S' }

// makeCast returns the conversion from one type to another, or nil when
// Postgres has no such cast (explicit casts included).
func makeCast(from, to Type) castFn {
	switch {
	case from == to:
		return func(v any) (any, error) { return v, nil }
	case to == tBpchar && isStringType(from):
		return func(v any) (any, error) { return v, nil }
	case isStringType(to):
		return func(v any) (any, error) { return castToText(v, from), nil }
	case isStringType(from):
		return func(v any) (any, error) { return parseValue(outputValue(v, from), to) }
	case from.Array && to.Array:
		return arrayCast(from, to)
	case from.Array || to.Array:
		return nil
	case from.category() == 'N' && to.category() == 'N':
		return numericCast(from, to)
	}
	return otherCast(from, to)
}

func arrayCast(from, to Type) castFn {
	ec := makeCast(from.elem(), to.elem())
	if ec == nil {
		return nil
	}
	return func(v any) (any, error) {
		a := v.(*array)
		out := &array{dims: a.dims, elems: make([]any, len(a.elems))}
		for i, e := range a.elems {
			if e == nil {
				continue
			}
			c, err := ec(e)
			if err != nil {
				return nil, err
			}
			out.elems[i] = c
		}
		return out, nil
	}
}

func numericCast(from, to Type) castFn {
	switch {
	case isInt(from) && isInt(to):
		return func(v any) (any, error) { return checkInt(v.(int64), to) }
	case isInt(from) && to == tNumeric:
		return func(v any) (any, error) { return numFromInt(v.(int64)), nil }
	case isInt(from):
		return func(v any) (any, error) { return roundFloat(float64(v.(int64)), to), nil }
	case isFloat(from) && isInt(to):
		return func(v any) (any, error) { return floatToInt(v.(float64), to) }
	case isFloat(from) && to == tNumeric:
		bits := floatBits(from)
		return func(v any) (any, error) { return floatToNumeric(v.(float64), bits), nil }
	case from == tFloat8 && to == tFloat4:
		return func(v any) (any, error) {
			f := v.(float64)
			r := roundFloat(f, tFloat4)
			if math.IsInf(r, 0) && !math.IsInf(f, 0) {
				return nil, errorf("value out of range: overflow")
			}
			if r == 0 && f != 0 {
				return nil, errorf("value out of range: underflow")
			}
			return r, nil
		}
	case isFloat(from):
		return func(v any) (any, error) { return v, nil }
	case isInt(to):
		return func(v any) (any, error) { return numericToInt(v.(*numeric), to) }
	}
	bits := floatBits(to)
	return func(v any) (any, error) { return v.(*numeric).float(bits) }
}

func floatBits(t Type) int {
	if t == tFloat4 {
		return 32
	}
	return 64
}

// roundFloat rounds f to the precision of float type t.
func roundFloat(f float64, t Type) float64 {
	if t == tFloat4 {
		return float64(float32(f))
	}
	return f
}

// otherCast covers bool/int4 and the date/time conversions.
func otherCast(from, to Type) castFn {
	switch from.Name + ">" + to.Name {
	case "int4>bool":
		return func(v any) (any, error) { return v.(int64) != 0, nil }
	case "bool>int4":
		return func(v any) (any, error) { return b2i(v.(bool)), nil }
	case "date>timestamp", "date>timestamptz":
		return func(v any) (any, error) { return dateToTimestamp(v.(int64)), nil }
	case "timestamp>date", "timestamptz>date":
		return func(v any) (any, error) { return timestampToDate(v.(int64)), nil }
	case "timestamp>timestamptz", "timestamptz>timestamp":
		return func(v any) (any, error) { return v, nil }
	case "timestamp>time", "timestamptz>time":
		return func(v any) (any, error) {
			us := v.(int64)
			if us == posInf || us == negInf {
				return nil, nil
			}
			return us - floorDiv(us, usecPerDay)*usecPerDay, nil
		}
	case "time>interval":
		return func(v any) (any, error) { return interval{usec: v.(int64)}, nil }
	case "interval>time":
		return func(v any) (any, error) { return timeAddInterval(0, v.(interval), 1), nil }
	}
	return nil
}

func timestampToDate(us int64) int64 {
	if us == posInf || us == negInf {
		return us
	}
	return floorDiv(us, usecPerDay)
}
