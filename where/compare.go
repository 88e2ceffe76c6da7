package where

import "strings"

// comparator returns the btree ordering of scalar type t, or nil when t has
// no supported ordering (enums, jsonb, arrays are equality-only here).
func comparator(t Type) func(a, b any) int {
	if t.Array || t.Enum {
		return nil
	}
	switch t.Name {
	case "int2", "int4", "int8", "date", "time", "timestamp", "timestamptz":
		return func(a, b any) int { return cmpInt(a.(int64), b.(int64)) }
	case "float4", "float8":
		return func(a, b any) int { return cmpFloat(a.(float64), b.(float64)) }
	case "numeric":
		return func(a, b any) int { return cmpNumeric(a.(*numeric), b.(*numeric)) }
	case "text", "varchar", "uuid", "bytea":
		return func(a, b any) int { return strings.Compare(a.(string), b.(string)) }
	case "bpchar":
		return func(a, b any) int {
			return strings.Compare(strings.TrimRight(a.(string), " "), strings.TrimRight(b.(string), " "))
		}
	case "bool":
		return func(a, b any) int { return cmpInt(b2i(a.(bool)), b2i(b.(bool))) }
	case "interval":
		return func(a, b any) int { return cmpInterval(a.(interval), b.(interval)) }
	}
	return nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// equality returns the "=" of type t (scalars, enums, jsonb, arrays).
func equality(t Type) func(a, b any) bool {
	switch {
	case t.Array:
		eq := equality(t.elem())
		if eq == nil {
			return nil
		}
		return func(a, b any) bool { return arrayEqual(a.(*array), b.(*array), eq) }
	case t.Enum:
		return func(a, b any) bool { return a.(string) == b.(string) }
	case t.Name == "jsonb":
		return equalJSONB
	}
	c := comparator(t)
	if c == nil {
		return nil
	}
	return func(a, b any) bool { return c(a, b) == 0 }
}

// arrayEqual is array_eq: same dimensions and pairwise equal elements,
// where two NULL elements count as equal.
func arrayEqual(a, b *array, eq func(a, b any) bool) bool {
	if !equalDims(a.dims, b.dims) {
		return false
	}
	for i := range a.elems {
		x, y := a.elems[i], b.elems[i]
		if x == nil || y == nil {
			if (x == nil) != (y == nil) {
				return false
			}
			continue
		}
		if !eq(x, y) {
			return false
		}
	}
	return true
}

// arrayContains reports whether every non-NULL-free element of sub occurs in
// sup (array_contain_compare; any NULL in sub makes it false).
func arrayContains(sup, sub *array, eq func(a, b any) bool) bool {
	for _, x := range sub.elems {
		if x == nil || !arrayHas(sup, x, eq) {
			return false
		}
	}
	return true
}

func arrayHas(a *array, x any, eq func(a, b any) bool) bool {
	for _, y := range a.elems {
		if y != nil && eq(x, y) {
			return true
		}
	}
	return false
}

func arrayOverlaps(a, b *array, eq func(a, b any) bool) bool {
	for _, x := range a.elems {
		if x != nil && arrayHas(b, x, eq) {
			return true
		}
	}
	return false
}

// cmpResult maps a three-way comparison to the boolean result of op.
func cmpResult(op string, c int) bool {
	switch op {
	case "=":
		return c == 0
	case "<>":
		return c != 0
	case "<":
		return c < 0
	case ">":
		return c > 0
	case "<=":
		return c <= 0
	}
	return c >= 0
}

// toDomain converts date operands of cross-type date/timestamp comparisons
// to timestamps; other values pass through.
func toDomain(from, domain Type) func(any) any {
	if from.Name == "date" && (domain.Name == "timestamp" || domain.Name == "timestamptz") {
		return func(v any) any { return dateToTimestamp(v.(int64)) }
	}
	return func(v any) any { return v }
}

// dateToTimestamp converts days to µs, saturating to ±infinity out of range.
func dateToTimestamp(d int64) int64 {
	switch {
	case d == posInf || d >= maxTsDays:
		return posInf
	case d == negInf || d < minDateDays:
		return negInf
	}
	return d * usecPerDay
}

// compareDomain picks the type both operands of a comparison are brought to.
func compareDomain(lt, rt Type) Type {
	switch {
	case lt == rt:
		return lt
	case lt.category() == 'N' && rt.category() == 'N':
		if lt.Name == "float4" || lt.Name == "float8" {
			return tFloat8
		}
		return tInt8
	case lt.Name == "date":
		return rt
	}
	return lt
}

// makeCompare builds the implementation of comparison op on (lt, rt), which
// must be one of the catalog's signatures.
func makeCompare(op string, lt, rt Type) func(a, b any) (any, error) {
	d := compareDomain(lt, rt)
	cl, cr := toDomain(lt, d), toDomain(rt, d)
	if op == "=" || op == "<>" {
		eq := equality(d)
		return func(a, b any) (any, error) { return eq(cl(a), cr(b)) == (op == "="), nil }
	}
	c := comparator(d)
	return func(a, b any) (any, error) { return cmpResult(op, c(cl(a), cr(b))), nil }
}
