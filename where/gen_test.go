package where

import (
	"fmt"
	"math/rand"
	"strings"
)

// testColumns is the differential test's table.
var testColumns = []struct {
	name, sqlType string
	col           Column
}{
	{"i2", "int2", Column{Name: "i2", Type: "int2"}},
	{"i4", "int4", Column{Name: "i4", Type: "int4"}},
	{"i8", "int8", Column{Name: "i8", Type: "int8"}},
	{"f4", "float4", Column{Name: "f4", Type: "float4"}},
	{"f8", "float8", Column{Name: "f8", Type: "float8"}},
	{"n", "numeric", Column{Name: "n", Type: "numeric"}},
	{"t", "text", Column{Name: "t", Type: "text"}},
	{"v", "varchar(20)", Column{Name: "v", Type: "varchar"}},
	{"c", "char(4)", Column{Name: "c", Type: "bpchar"}},
	{"b", "bool", Column{Name: "b", Type: "bool"}},
	{"u", "uuid", Column{Name: "u", Type: "uuid"}},
	{"d", "date", Column{Name: "d", Type: "date"}},
	{"tm", "time", Column{Name: "tm", Type: "time"}},
	{"ts", "timestamp", Column{Name: "ts", Type: "timestamp"}},
	{"tz", "timestamptz", Column{Name: "tz", Type: "timestamptz"}},
	{"iv", "interval", Column{Name: "iv", Type: "interval"}},
	{"by", "bytea", Column{Name: "by", Type: "bytea"}},
	{"j", "jsonb", Column{Name: "j", Type: "jsonb"}},
	{"e", "mood", Column{Name: "e", Type: "mood", IsEnum: true}},
	{"ai", "int4[]", Column{Name: "ai", Type: "int4", Dims: 1}},
	{"at", "text[]", Column{Name: "at", Type: "text", Dims: 1}},
	{"Mixed Case", "int4", Column{Name: "Mixed Case", Type: "int4"}},
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.Intn(len(xs))] }

// literal values (Postgres input syntax) the row generator draws from.
var sampleValues = map[string][]string{
	"i2":         {"0", "1", "-1", "32767", "-32768", "7", "100", "-42"},
	"i4":         {"0", "1", "-1", "2147483647", "-2147483648", "5", "42", "-100", "1000"},
	"i8":         {"0", "1", "-1", "9223372036854775807", "-9223372036854775808", "5", "42", "10000000000"},
	"f4":         {"0", "-0", "1.5", "-2.25", "1.1", "3.4e38", "1e-10", "NaN", "Infinity", "-Infinity", "42", "0.1", "1e6", "1234567", "0.0001", "1e-5", "-0.5"},
	"f8":         {"0", "-0", "1.5", "-2.25", "1.1", "1e300", "1e-300", "NaN", "Infinity", "-Infinity", "42", "0.1", "123456789.125", "1e15", "123456789012345", "1e-4", "0.00001", "4.9e-324"},
	"n":          {"0", "1.50", "-2.25", "1.1", "123456789012345678901234567890.123456789", "-0.000001", "NaN", "Infinity", "-Infinity", "42", "0.1", "1e20"},
	"t":          {"", "a", "A", "abc", "ABC", "a%b", "a_b", `a\b`, " x ", "ä", "Ünïcødé", "hello world", "42", "t"},
	"v":          {"", "a", "Abc", "abc ", "x_y", "ä", "42"},
	"c":          {"", "a", "ab", "abcd", "a  ", "Z"},
	"b":          {"true", "false"},
	"u":          {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "123e4567-e89b-12d3-a456-426614174000"},
	"d":          {"2024-01-15", "2024-02-29", "1999-12-31", "2000-01-01", "0044-03-15 BC", "infinity", "-infinity", "1970-01-01"},
	"tm":         {"00:00:00", "12:30:00", "23:59:59.999999", "24:00:00", "08:15:30.5"},
	"ts":         {"2024-01-15 00:00:00", "2024-01-15 12:30:45.123456", "2000-01-01 00:00:00", "1999-12-31 23:59:59", "0044-03-15 10:00:00 BC", "infinity", "-infinity", "2024-01-15T12:30:45.123456", "2024-01-15 12:30:45+05"},
	"tz":         {"2024-01-15 00:00:00+00", "2024-01-15 12:30:45.5+02", "2000-01-01 00:00:00+00", "1999-12-31 23:59:59-05", "infinity", "-infinity", "2024-01-15T10:30:45.5Z", "2024-01-15 14:30:45.5+04:00", "2024-01-15 12:00:00 UTC", "2024-01-15"},
	"iv":         {"1 day", "-1 day", "1 year 2 mons", "PT36H", "00:00:00", "1 mon", "30 days", "-3 hours 20 minutes", "1.5 seconds", "P1Y2M3DT4H5M6.5S", "@ 1 day ago", "1 day 02:00:00", "-1 days +02:03:04.5", "1.5 days", "P-1M", "2 weeks"},
	"by":         {`\x`, `\x00`, `\xdeadbeef`, `\x41`, `\xff00`},
	"j":          {`{}`, `[]`, `{"a": 1}`, `{"a": 1.0}`, `[1, 2, "x"]`, `null`, `"str"`, `{"b": {"c": [true, null]}, "a": 2}`},
	"e":          {"sad", "ok", "happy"},
	"ai":         {"{}", "{1,2,3}", "{1,NULL}", "{5}", "{-1,0,1}", "{42,42}"},
	"at":         {"{}", "{a,b}", `{"a b","c\"d"}`, "{NULL,x}", `{"",A}`, "{abc}"},
	"Mixed Case": {"1", "2", "3"},
}

// gen builds random where clauses over testColumns.
type gen struct {
	r *rand.Rand
}

func (g *gen) lit(col string) string {
	return quoteLiteral(pick(g.r, sampleValues[col]...))
}

func (g *gen) numCol() string { return pick(g.r, "i2", "i4", "i8", "f4", "f8", "n") }

func (g *gen) numLit() string {
	return pick(g.r, "0", "1", "-1", "2", "5", "42", "1.5", "-2.25", "0.1", "1.1", "10000000000", "'7'", "1e3", "3", "100")
}

func (g *gen) num(depth int) string {
	if depth <= 0 {
		return pick(g.r, g.numCol(), g.numCol(), g.numLit())
	}
	switch g.r.Intn(16) {
	case 12:
		return fmt.Sprintf("(%s ^ %s)", pick(g.r, "n", "f8", "i2", "1.5", "n::numeric"), pick(g.r, "2", "i2", "-1", "3.0"))
	case 13:
		return fmt.Sprintf("(%s)", pick(g.r, "|/ f8", "@ i4", "@ n", "@ f4", "~ i2", "@ i8"))
	case 14:
		return fmt.Sprintf("(%s %s %s)", pick(g.r, "i2", "i4", "i8", "7"), pick(g.r, "&", "|", "#"), pick(g.r, "i2", "i4", "i8", "12"))
	case 15:
		return fmt.Sprintf("array_ndims(%s)", pick(g.r, "ai", "at", "ai || i4", "array_cat(ai, ai)"))
	case 0, 1, 2:
		return g.numCol()
	case 3:
		return g.numLit()
	case 4, 5:
		return fmt.Sprintf("(%s %s %s)", g.num(depth-1), pick(g.r, "+", "-", "*", "/", "%"), g.num(depth-1))
	case 6:
		return "(- " + g.num(depth-1) + ")"
	case 7:
		return fmt.Sprintf("%s::%s", g.num(depth-1), pick(g.r, "int2", "int4", "int8", "float4", "float8", "numeric"))
	case 8:
		return fmt.Sprintf("coalesce(%s, %s)", g.num(depth-1), g.num(depth-1))
	case 9:
		return fmt.Sprintf("%s(%s, %s)", pick(g.r, "greatest", "least"), g.num(depth-1), g.num(depth-1))
	case 10:
		return fmt.Sprintf("length(%s)", g.text(depth-1))
	}
	return "\"Mixed Case\""
}

func (g *gen) text(depth int) string {
	if depth <= 0 {
		return pick(g.r, "t", "v", "c", g.lit("t"))
	}
	switch g.r.Intn(10) {
	case 0, 1:
		return pick(g.r, "t", "v", "c")
	case 2:
		return g.lit(pick(g.r, "t", "v", "c"))
	case 3:
		return fmt.Sprintf("%s(%s)", pick(g.r, "lower", "upper"), g.text(depth-1))
	case 4:
		return fmt.Sprintf("(%s || %s)", g.text(depth-1), pick(g.r, g.text(depth-1), g.num(depth-1), "b"))
	case 5:
		return fmt.Sprintf("concat(%s, %s, %s)", g.text(depth-1), pick(g.r, "b", "i4", "c", "f8", "d"), g.text(depth-1))
	case 6:
		return fmt.Sprintf("%s::%s", pick(g.r, "i4", "n", "f4", "f8", "b", "d", "ts", "tz", "iv", "u", "e", "c", "by", "j", "ai", "tm"), pick(g.r, "text", "varchar"))
	case 7:
		return fmt.Sprintf("coalesce(%s, %s)", g.text(depth-1), g.text(depth-1))
	case 8:
		return fmt.Sprintf("(%s)::text", g.num(depth-1))
	}
	return fmt.Sprintf("(%s)::text", pick(g.r, g.temporal(), "(iv + "+g.lit("iv")+"::interval)", "(ts - tz::timestamp)", "j", "(tm + iv)"))
}

func (g *gen) cmpOp() string { return pick(g.r, "=", "<>", "!=", "<", ">", "<=", ">=") }

func (g *gen) likePattern() string {
	return quoteLiteral(pick(g.r, "a%", "%b%", "_", "%", "a\\_b", "A%", "%ä%", "", "a_c", "%\\%%", "__", "a%b"))
}

func (g *gen) temporal() string {
	switch g.r.Intn(8) {
	case 6:
		return fmt.Sprintf("(%s AT TIME ZONE %s)", pick(g.r, "d", "ts", "tz", g.lit("ts")+"::timestamp"), g.zone())
	case 7:
		return fmt.Sprintf("timezone(%s, %s)", g.zone(), pick(g.r, "ts", "tz", "d"))
	case 0:
		return pick(g.r, "d", "ts", "tz")
	case 1:
		return pick(g.r, g.lit("d")+"::date", g.lit("ts")+"::timestamp", g.lit("tz")+"::timestamptz")
	case 2:
		return fmt.Sprintf("(d %s %d)", pick(g.r, "+", "-"), g.r.Intn(400)-200)
	case 3:
		return fmt.Sprintf("(%s %s %s::interval)", pick(g.r, "d", "ts", "tz"), pick(g.r, "+", "-"), g.lit("iv"))
	case 4:
		return fmt.Sprintf("(d + %s::time)", g.lit("tm"))
	}
	return pick(g.r, "ts::date", "tz::date", "d::timestamp", "ts::timestamptz", "tz::timestamp")
}

func (g *gen) zone() string {
	return quoteLiteral(pick(g.r, "UTC", "America/New_York", "Europe/Berlin", "Asia/Kathmandu", "Australia/Lord_Howe", "gmt", "Etc/GMT+5"))
}

// interval expressions: justify_*, scaling by float8
func (g *gen) ivExpr() string {
	switch g.r.Intn(4) {
	case 0:
		return fmt.Sprintf("%s(%s)", pick(g.r, "justify_days", "justify_hours", "justify_interval"), pick(g.r, "iv", g.lit("iv")+"::interval", "(ts - tz::timestamp)"))
	case 1:
		return fmt.Sprintf("(iv %s %s)", pick(g.r, "*", "/"), pick(g.r, "f8", "2", "0.5", "i2", "-1.5"))
	case 2:
		return fmt.Sprintf("(%s * iv)", pick(g.r, "f8", "3", "0.1"))
	}
	return "iv"
}

// arrayExpr is an int4[] or text[] expression (concatenation functions).
func (g *gen) arrayExpr(text bool) string {
	a, x, lit := "ai", pick(g.r, "i4", "i2", "7", "NULL", "1.5::int4"), pick(g.r, "'{1,NULL}'", "'{}'", "ARRAY[5, 42]", "NULL")
	if text {
		a, x, lit = "at", pick(g.r, "t", "v", "'x'", "NULL::text", "c::text"), pick(g.r, "'{a,NULL}'", "'{}'", "ARRAY['b']", "NULL")
	}
	switch g.r.Intn(7) {
	case 0:
		return fmt.Sprintf("(%s || %s)", a, pick(g.r, x, lit, a))
	case 1:
		return fmt.Sprintf("(%s || %s)", pick(g.r, x, lit), a)
	case 2:
		return fmt.Sprintf("array_cat(%s, %s)", pick(g.r, a, lit), pick(g.r, a, lit))
	case 3:
		return fmt.Sprintf("array_append(%s, %s)", a, x)
	case 4:
		return fmt.Sprintf("array_prepend(%s, %s)", x, a)
	}
	return a
}

func (g *gen) scalarCmp(depth int) string {
	switch g.r.Intn(14) {
	case 0, 1, 2:
		return fmt.Sprintf("%s %s %s", g.num(depth), g.cmpOp(), g.num(depth))
	case 3, 4:
		return fmt.Sprintf("%s %s %s", g.text(depth), g.cmpOp(), g.text(depth))
	case 5:
		return fmt.Sprintf("%s %s %s", g.temporal(), g.cmpOp(), pick(g.r, g.temporal(), g.lit(pick(g.r, "d", "ts", "tz"))))
	case 6:
		return fmt.Sprintf("%s %s %s", pick(g.r, "tm", g.lit("tm")+"::time", "ts::time", "(tm + "+g.lit("iv")+"::interval)"), g.cmpOp(), pick(g.r, "tm", g.lit("tm")))
	case 7:
		return fmt.Sprintf("%s %s %s", pick(g.r, "iv", "(iv + "+g.lit("iv")+"::interval)", "-iv", "(ts - tz::timestamp)", "(tm - "+g.lit("tm")+"::time)", g.ivExpr()), g.cmpOp(), pick(g.r, "iv", g.lit("iv"), g.ivExpr()))
	case 8:
		return fmt.Sprintf("u %s %s", g.cmpOp(), pick(g.r, g.lit("u"), strings.ToUpper(g.lit("u")), "u"))
	case 9:
		return fmt.Sprintf("%s %s %s", pick(g.r, "by", "(by || "+g.lit("by")+")"), g.cmpOp(), g.lit("by"))
	case 10:
		return fmt.Sprintf("j %s %s", pick(g.r, "=", "<>"), g.lit("j"))
	case 11:
		return fmt.Sprintf("e %s %s", pick(g.r, "=", "<>"), pick(g.r, g.lit("e"), "e"))
	case 12:
		return fmt.Sprintf("b %s %s", g.cmpOp(), pick(g.r, "true", "false", "'t'", "'no'", "b", "(i4 > 0)"))
	}
	return fmt.Sprintf("%s %s %s", pick(g.r, "length(by)", "i4::bool::int4", "n::int8", "f8::int4"), g.cmpOp(), g.num(0))
}

func (g *gen) arrayPred() string {
	switch g.r.Intn(10) {
	case 7:
		return fmt.Sprintf("%s %s %s", g.arrayExpr(false), pick(g.r, "@>", "<@", "&&", "=", "<>"), pick(g.r, g.lit("ai"), g.arrayExpr(false), "ARRAY[i4, NULL]"))
	case 8:
		return fmt.Sprintf("%s %s %s", g.arrayExpr(true), pick(g.r, "@>", "<@", "&&", "=", "<>"), pick(g.r, g.lit("at"), g.arrayExpr(true), "ARRAY[t, NULL]"))
	case 9:
		return fmt.Sprintf("%s %s %s(%s)", pick(g.r, "i4", "i2", "5", "NULL::int4"), g.cmpOp(), pick(g.r, "ANY", "ALL"), g.arrayExpr(false))
	case 0:
		return fmt.Sprintf("ai %s %s", pick(g.r, "@>", "<@", "&&", "=", "<>"), pick(g.r, g.lit("ai"), "ARRAY[1, 2]", "ARRAY[42]", "ai"))
	case 1:
		return fmt.Sprintf("at %s %s", pick(g.r, "@>", "<@", "&&", "="), pick(g.r, g.lit("at"), "ARRAY['a', 'b']", "ARRAY[t]"))
	case 2:
		return fmt.Sprintf("%s %s %s(ai)", g.num(1), g.cmpOp(), pick(g.r, "ANY", "ALL"))
	case 3:
		return fmt.Sprintf("%s %s %s(at)", g.text(1), pick(g.r, "=", "<>", "<", "LIKE"), pick(g.r, "ANY", "ALL"))
	case 4:
		return fmt.Sprintf("i4 = ANY(%s)", pick(g.r, "'{1,2,42}'", "ARRAY[1, i2, NULL]", "ai", "'{}'"))
	case 5:
		return fmt.Sprintf("t %s ANY(ARRAY[%s, %s])", pick(g.r, "=", "LIKE", "ILIKE", "<"), g.lit("t"), g.likePattern())
	}
	return fmt.Sprintf("ai::text = %s", g.lit("ai"))
}

func (g *gen) pred(depth int) string {
	switch g.r.Intn(17) {
	case 0, 1, 2:
		return g.scalarCmp(depth)
	case 3:
		if g.r.Intn(4) == 0 {
			return fmt.Sprintf("like(%s, %s)", g.text(depth), pick(g.r, g.likePattern(), g.text(0)))
		}
		return fmt.Sprintf("%s %s %s", g.text(depth), pick(g.r, "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "~~", "!~~*"), pick(g.r, g.likePattern(), g.text(0)))
	case 4:
		col := testColumns[g.r.Intn(len(testColumns))].col.Name
		return fmt.Sprintf("%s IS %sNULL", quoteIdent(col), pick(g.r, "", "NOT "))
	case 5:
		return fmt.Sprintf("(%s) IS %s%s", g.pred(depth-1), pick(g.r, "", "NOT "), pick(g.r, "TRUE", "FALSE", "UNKNOWN"))
	case 6:
		return fmt.Sprintf("%s %sIN (%s, %s, %s)", g.num(depth-1), pick(g.r, "", "NOT "), g.num(0), g.numLit(), pick(g.r, g.numLit(), "NULL"))
	case 7:
		return fmt.Sprintf("%s %sIN (%s, %s)", g.text(depth-1), pick(g.r, "", "NOT "), g.lit("t"), pick(g.r, g.lit("v"), "c", "NULL"))
	case 8:
		if g.r.Intn(3) == 0 {
			return fmt.Sprintf("%s %sBETWEEN %s%s AND %s", g.temporal(), pick(g.r, "", "NOT "), pick(g.r, "", "SYMMETRIC "), pick(g.r, g.temporal(), g.lit("d"), "NULL"), pick(g.r, g.temporal(), g.lit("tz")))
		}
		return fmt.Sprintf("%s %sBETWEEN %s%s AND %s", g.num(depth-1), pick(g.r, "", "NOT "), pick(g.r, "", "SYMMETRIC "), pick(g.r, g.num(0), "NULL"), g.num(0))
	case 9:
		return fmt.Sprintf("%s IS %sDISTINCT FROM %s", g.num(depth-1), pick(g.r, "", "NOT "), pick(g.r, g.num(0), "NULL"))
	case 10, 11:
		return g.arrayPred()
	case 12:
		return pick(g.r, "b", "NOT b", "b IS NOT TRUE", "e IN ('sad', 'ok')", "e NOT IN ('sad', NULL)", "e::text > 'ok'",
			"d IN ('2024-01-15', '1999-12-31')", "tz NOT IN ('2000-01-01 00:00:00+00', NULL)", "t NOT IN (v, NULL)",
			"coalesce(i4, i2, 0) > 0", "coalesce(t, v, c::text) = 'a'", "coalesce(NULL, ts, d) < tz", "u = coalesce(NULL, u)")
	case 13:
		return g.misc()
	}
	if depth <= 0 {
		return g.scalarCmp(0)
	}
	switch g.r.Intn(3) {
	case 0:
		return fmt.Sprintf("(%s AND %s)", g.pred(depth-1), g.pred(depth-1))
	case 1:
		return fmt.Sprintf("(%s OR %s)", g.pred(depth-1), g.pred(depth-1))
	}
	return fmt.Sprintf("NOT (%s)", g.pred(depth-1))
}

// misc covers literal typing corners: unknown vs unknown, literal casts,
// padded bpchar literals, date/time literal forms.
func (g *gen) misc() string {
	switch g.r.Intn(8) {
	case 0:
		return fmt.Sprintf("%s %s %s", g.lit("t"), g.cmpOp(), g.lit("t"))
	case 1:
		return fmt.Sprintf("%s::%s %s %s", pick(g.r, "'42'", "' 12 '", "'-7'", "'1e3'", "'0.5'"), pick(g.r, "int4", "int8", "numeric", "float8", "float4", "int2"), g.cmpOp(), g.num(0))
	case 2:
		return fmt.Sprintf("c %s %s", g.cmpOp(), pick(g.r, "'a  '", "'ab'", "'ab '", "''", "'abcd'", "'a'::text", "'a '::varchar"))
	case 3:
		return fmt.Sprintf("d %s %s", g.cmpOp(), pick(g.r, "'2024-01-15 10:00'", "'2024-01-15T23:59:59Z'", "'1999-12-31'", "'infinity'", "'epoch'"))
	case 4:
		return fmt.Sprintf("%s %s %s", pick(g.r, "ts", "tz"), g.cmpOp(), g.lit(pick(g.r, "ts", "tz", "d")))
	case 5:
		return fmt.Sprintf("%s IS %sDISTINCT FROM %s", g.text(1), pick(g.r, "", "NOT "), pick(g.r, g.text(0), "NULL"))
	case 6:
		return fmt.Sprintf("%s::%s %s %s", pick(g.r, "' true '", "'yes'", "'0'", "'off'"), "bool", pick(g.r, "=", "<>"), "b")
	}
	return fmt.Sprintf("%s %s %s", pick(g.r, "u::text", "by::text", "j::text", "iv::text", "tm::text"), g.cmpOp(), g.lit(pick(g.r, "t", "u", "j")))
}
