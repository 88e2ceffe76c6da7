package where

import "strings"

// Type is the static type of an expression: a Postgres base type name
// (pg_type.typname), optionally an array of it.
type Type struct {
	Name  string // typname of the scalar or element type; "unknown" for untyped literals
	Array bool
	Enum  bool
}

var (
	tUnknown     = Type{Name: "unknown"}
	tBool        = Type{Name: "bool"}
	tInt2        = Type{Name: "int2"}
	tInt4        = Type{Name: "int4"}
	tInt8        = Type{Name: "int8"}
	tFloat4      = Type{Name: "float4"}
	tFloat8      = Type{Name: "float8"}
	tNumeric     = Type{Name: "numeric"}
	tText        = Type{Name: "text"}
	tVarchar     = Type{Name: "varchar"}
	tBpchar      = Type{Name: "bpchar"}
	tUUID        = Type{Name: "uuid"}
	tDate        = Type{Name: "date"}
	tTime        = Type{Name: "time"}
	tTimestamp   = Type{Name: "timestamp"}
	tTimestamptz = Type{Name: "timestamptz"}
	tInterval    = Type{Name: "interval"}
	tBytea       = Type{Name: "bytea"}
	tJSONB       = Type{Name: "jsonb"}
)

// knownScalars are the scalar types whose values this package can parse and
// operate on.
var knownScalars = map[string]bool{
	"bool": true, "int2": true, "int4": true, "int8": true, "float4": true, "float8": true,
	"numeric": true, "text": true, "varchar": true, "bpchar": true, "uuid": true, "date": true,
	"time": true, "timestamp": true, "timestamptz": true, "interval": true, "bytea": true, "jsonb": true,
}

// castTargets are the types an explicit cast may name (Electric's list plus
// interval, and bpchar so that SQL() output round-trips).
var castTargets = map[string]bool{
	"bool": true, "bytea": true, "date": true, "float4": true, "float8": true, "int2": true,
	"int4": true, "int8": true, "numeric": true, "text": true, "time": true, "timestamp": true,
	"timestamptz": true, "uuid": true, "varchar": true, "jsonb": true, "interval": true, "bpchar": true,
}

func (t Type) String() string {
	if t.Array {
		return t.Name + "[]"
	}
	return t.Name
}

// elem returns the element type of an array type.
func (t Type) elem() Type { return Type{Name: t.Name, Enum: t.Enum} }

// arrayOf returns the array type whose elements have type t.
func (t Type) arrayOf() Type { return Type{Name: t.Name, Enum: t.Enum, Array: true} }

func (t Type) isUnknown() bool { return t.Name == "unknown" && !t.Array }

// sqlName renders the type for a cast in generated SQL.
func (t Type) sqlName() string {
	n := t.Name
	if t.Enum || !knownScalars[n] {
		n = quoteIdent(n)
	}
	if t.Array {
		return n + "[]"
	}
	return n
}

// category returns the Postgres typcategory of t.
func (t Type) category() byte {
	switch {
	case t.Array:
		return 'A'
	case t.Enum:
		return 'E'
	}
	switch t.Name {
	case "int2", "int4", "int8", "float4", "float8", "numeric":
		return 'N'
	case "text", "varchar", "bpchar":
		return 'S'
	case "bool":
		return 'B'
	case "date", "time", "timestamp", "timestamptz":
		return 'D'
	case "interval":
		return 'T'
	case "unknown":
		return 'X'
	}
	return 'U'
}

// preferred reports typispreferred.
func (t Type) preferred() bool {
	if t.Array || t.Enum {
		return false
	}
	switch t.Name {
	case "float8", "text", "bool", "timestamptz", "interval":
		return true
	}
	return false
}

// implicitCasts lists pg_cast entries with castcontext 'i' between known types.
var implicitCasts = map[string][]string{
	"int2":      {"int4", "int8", "float4", "float8", "numeric"},
	"int4":      {"int8", "float4", "float8", "numeric"},
	"int8":      {"float4", "float8", "numeric"},
	"float4":    {"float8"},
	"numeric":   {"float4", "float8"},
	"text":      {"bpchar", "varchar"},
	"varchar":   {"text", "bpchar"},
	"bpchar":    {"text", "varchar"},
	"date":      {"timestamp", "timestamptz"},
	"time":      {"interval"},
	"timestamp": {"timestamptz"},
}

// canImplicit reports whether a value of type from can be implicitly coerced to to.
func canImplicit(from, to Type) bool {
	if from == to || from.isUnknown() {
		return true
	}
	if from.Array || to.Array || from.Enum || to.Enum {
		return false
	}
	for _, c := range implicitCasts[from.Name] {
		if c == to.Name {
			return true
		}
	}
	return false
}

// commonType implements Postgres' select_common_type (for IN lists, ARRAY[],
// COALESCE, GREATEST/LEAST). ok is false when the types cannot be unified.
func commonType(types []Type) (Type, bool) {
	t, bad := commonTypeAt(types)
	return t, bad < 0
}

// commonTypeAt is commonType that also says which type does not fit (-1
// when all do), for the error's position: Postgres reports it at that
// expression (select_common_type, coerce_to_common_type).
func commonTypeAt(types []Type) (Type, int) {
	p := tUnknown
	for i, n := range types {
		if n.isUnknown() || n == p {
			continue
		}
		switch {
		case p.isUnknown():
			p = n
		case n.category() != p.category():
			return Type{}, i
		case !p.preferred() && canImplicit(p, n) && !canImplicit(n, p):
			p = n
		}
	}
	if p.isUnknown() {
		p = tText
	}
	for i, n := range types {
		if !canImplicit(n, p) {
			return Type{}, i
		}
	}
	return p, -1
}

// resolveTypeName maps a cast's type name (possibly schema-qualified or an
// SQL-standard spelling) to a typname.
func resolveTypeName(names []string) string {
	if len(names) == 2 && names[0] == "pg_catalog" {
		names = names[1:]
	}
	return strings.Join(names, ".")
}
