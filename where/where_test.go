package where

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"
)

var unitCols = []Column{
	{Name: "id", Type: "int8"},
	{Name: "x", Type: "int4"},
	{Name: "name", Type: "text"},
	{Name: "flag", Type: "bool"},
	{Name: "mood", Type: "mood", IsEnum: true},
	{Name: "tags", Type: "text", Dims: 1},
	{Name: "ts", Type: "timestamptz"},
	{Name: "Upper", Type: "int4"},
	{Name: "doc", Type: "json"},
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ clause, want string }{
		{"1 x 1", `At location 17: syntax error at or near "x"`},
		{"id = ", "At location 20: syntax error at end of input"},
		{"foo = 1", "At location 0: unknown reference foo"},
		{"id = 1 AND bar > 2", "At location 11: unknown reference bar"},
		{`"ID" = 1`, "At location 0: unknown reference ID"},
		{"upper = 1", "At location 0: unknown reference upper"},
		{"t.id = 1", "At location 0: unknown reference t.id"},
		{"id = 'abc'", `At location 5: invalid input syntax for type bigint: "abc"`},
		{"'abc' = x", `At location 0: invalid input syntax for type integer: "abc"`},
		{"id + 1", "WHERE clause must return a boolean"},
		{"name", "WHERE clause must return a boolean"},
		{"1=1; DROP TABLE x", `unescaped ";" causing statement split`},
		{"true ORDER BY 1", "malformed query ending with SQL clauses"},
		{"true LIMIT 1", "malformed query ending with SQL clauses"},
		{"true GROUP BY 1", "malformed query ending with SQL clauses"},
		{"id IN (SELECT 1)", "At location 3: Subqueries are not supported"},
		{"EXISTS (SELECT 1)", "At location 0: Subqueries are not supported"},
		{"now() > ts", "At location 0: non-deterministic functions are not supported (now)"},
		{"random() > 0.5", "At location 0: non-deterministic functions are not supported (random)"},
		{"ts < current_timestamp", "At location 5: non-deterministic functions are not supported (current_timestamp)"},
		{"ts < 'now'", `At location 5: non-deterministic date/time literal "now" is not supported`},
		{"count(*) > 1", "At location 0: aggregate functions are not supported (count)"},
		{"sum(x) OVER () > 1", "At location 0: window functions are not supported"},
		{"name = 1", "At location 5: operator does not exist: text = int4"},
		{"mood < 'happy'", "At location 5: operator < is not supported for type mood (only = and <>)"},
		{"mood = name", "At location 5: operator does not exist: mood = text"},
		{"x::varchar(3) = 'a'", "At location 1: type modifiers are not supported in casts (varchar)"},
		{"x::inet IS NULL", "At location 1: casting to type inet is not supported"},
		{"x::uuid IS NULL", "At location 1: cannot cast type int4 to uuid"},
		{"id = $2", "At location 5: parameter $2 was not provided"},
		{"1/0 = 1", "At location 1: division by zero"},
		{"x = 1 AND name", "argument of AND must be type boolean, not type text"},
		{"md5(name) = 'x'", "At location 0: unknown or unsupported function md5"},
		{"lower(x) = 'a'", "At location 0: function lower(int4) does not exist"},
		{"CASE WHEN flag THEN true END", "At location 0: CASE expressions are not supported"},
		{"doc = '{}'", "At location 4: operator does not exist: json = unknown"},
		{"tags @> ARRAY[1]", "At location 5: operator does not exist: text[] @> int4[]"},
		{"name SIMILAR TO 'a'", "At location 5: SIMILAR is not supported"},
		{"-'5' = x", "At location 0: operator is not unique: - unknown"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.clause, unitCols, map[string]string{"1": "1"})
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error %q", tt.clause, tt.want)
			continue
		}
		if _, ok := err.(*Error); !ok {
			t.Errorf("Parse(%q) error is %T, want *Error", tt.clause, err)
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error\n  got  %q\n  want %q", tt.clause, err.Error(), tt.want)
		}
	}
}

func TestSQLRendering(t *testing.T) {
	tests := []struct {
		clause string
		params map[string]string
		want   string
	}{
		{"id = $1", map[string]string{"1": "42"}, `("id" = '42'::int8)`},
		{"$1 = name", map[string]string{"1": "it's"}, `('it''s'::text = "name")`},
		{`"Upper" = 1`, nil, `("Upper" = '1'::int4)`},
		{"x IN (1, 2.5)", nil, `((("x")::numeric = '1'::numeric) OR (("x")::numeric = '2.5'::numeric))`},
		{"mood = 'happy'", nil, `("mood" = 'happy')`},
		{"x BETWEEN 1 AND 3", nil, `(("x" >= '1'::int4) AND ("x" <= '3'::int4))`},
		{"name || x = 'a1'", nil, `(("name" || ("x")::text) = 'a1'::text)`},
		{"'a' = ANY(tags)", nil, `('a'::text = ANY ("tags"))`},
		{"tags @> '{a,\"b c\"}'", nil, `("tags" @> '{a,"b c"}'::text[])`},
		{"NOT flag IS NOT TRUE", nil, `(NOT ("flag" IS NOT TRUE))`},
		{"ts > '2024-01-01T10:00:00+02'", nil, `("ts" > '2024-01-01 08:00:00+00'::timestamptz)`},
		{"x + 1 > 2 * 3", nil, `(("x" + '1'::int4) > '6'::int4)`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.clause, unitCols, tt.params)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.clause, err)
			continue
		}
		if got := e.SQL(); got != tt.want {
			t.Errorf("Parse(%q).SQL()\n  got  %s\n  want %s", tt.clause, got, tt.want)
		}
	}
}

func TestColumns(t *testing.T) {
	e, err := Parse(`x > 1 AND (name = 'a' OR x < 0 OR "Upper" IS NULL) AND flag`, unitCols, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.Columns(), ","); got != "Upper,flag,name,x" {
		t.Errorf("Columns() = %s", got)
	}
}

func sp(s string) *string { return &s }

// TestMatches covers three-valued logic and value parsing; the expected
// results were checked against Postgres.
func TestMatches(t *testing.T) {
	row := MapRow{"id": sp("5"), "x": nil, "name": sp("Ab"), "flag": sp("t"), "mood": sp("ok"),
		"tags": sp(`{a,NULL,"b c"}`), "ts": sp("2024-01-15 12:00:00+00")}
	tests := []struct {
		clause string
		want   bool
		err    bool
	}{
		{"id = 5", true, false},
		{"x = 1", false, false},
		{"NOT (x = 1)", false, false},
		{"x IS NULL", true, false},
		{"(x = 1) IS UNKNOWN", true, false},
		{"(x = 1) IS NOT FALSE", true, false},
		{"x = 1 OR true", true, false},
		{"NOT (x = 1 AND false)", true, false},
		{"NOT (x = 1 OR false)", false, false},
		{"id NOT IN (2, NULL)", false, false},
		{"id IN (5, NULL)", true, false},
		{"id NOT IN (5, NULL)", false, false},
		{"x IS DISTINCT FROM NULL", false, false},
		{"id IS DISTINCT FROM x", true, false},
		{"'b c' = ANY(tags)", true, false},
		{"'z' = ANY(tags)", false, false},
		{"'z' <> ALL(tags)", false, false},
		{"tags @> '{a}'", true, false},
		{"tags @> '{NULL}'", false, false},
		{"flag AND flag = 'yes'", true, false},
		{"mood = 'ok' AND mood <> 'sad'", true, false},
		{"name LIKE 'A_' AND name ILIKE 'ab' AND name NOT LIKE 'a%'", true, false},
		{"lower(name) = 'ab' AND upper(name) = 'AB' AND length(name) = 2", true, false},
		{"coalesce(x, 7) = 7 AND greatest(x, 3, id) = 5 AND concat(name, x, flag) = 'Abt'", true, false},
		{"id / (id - 5) = 1", false, true},
		{"ts = '2024-01-15 14:00+02' AND ts::date = '2024-01-15'", true, false},
		{"ts + '1 mon'::interval = '2024-02-15 12:00:00Z'", true, false},
		{"id::text || name = '5Ab'", true, false},
		{"id BETWEEN SYMMETRIC 9 AND 1", true, false},
		{"id NOT BETWEEN 1 AND 9", false, false},
	}
	for _, tt := range tests {
		e, err := Parse(tt.clause, unitCols, nil)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.clause, err)
			continue
		}
		got, err := e.Matches(row)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%q: Matches = %v, %v; want %v (error %v)", tt.clause, got, err, tt.want, tt.err)
		}
	}
}

func TestBoolSpellings(t *testing.T) {
	e, err := Parse("flag", unitCols, nil)
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"t": true, "true": true, "f": false, "false": false} {
		got, err := e.Matches(MapRow{"flag": sp(v)})
		if err != nil || got != want {
			t.Errorf("flag=%q: %v, %v", v, got, err)
		}
	}
	if _, err := e.Matches(MapRow{"flag": sp("maybe")}); err == nil {
		t.Error("bad boolean text should be an evaluation error")
	}
}

func TestParams(t *testing.T) {
	e, err := Parse("id = $1 AND name = $2", unitCols, map[string]string{"1": "5", "2": "Ab"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Matches(MapRow{"id": sp("5"), "name": sp("Ab")}); !ok {
		t.Error("params should match")
	}
	if _, err := Parse("id = $1", unitCols, map[string]string{"1": "5 OR true"}); err == nil {
		t.Error("a parameter must be a value, never SQL")
	}
}

var fuzzRows = []MapRow{
	{"i2": sp("1"), "i4": sp("-5"), "i8": sp("9223372036854775807"), "f4": sp("1.5"), "f8": sp("NaN"),
		"n": sp("-12.50"), "t": sp("a%b"), "v": sp("x"), "c": sp("ab  "), "b": sp("t"),
		"u": sp("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "d": sp("2024-02-29"), "tm": sp("24:00:00"),
		"ts": sp("0044-03-15 10:00:00 BC"), "tz": sp("infinity"), "iv": sp("P1Y-2M3DT4H"), "by": sp(`\xdead`),
		"j": sp(`{"a": [1, null]}`), "e": sp("ok"), "ai": sp("{1,NULL,3}"), "at": sp(`{"a b",NULL}`), "Mixed Case": sp("0")},
	{},
	{"i2": sp("x"), "n": sp("??"), "d": sp("nope"), "ai": sp("{{1},{2,3}}"), "j": sp("{"), "iv": sp("?"), "b": sp("2")},
}

// FuzzParse checks that no clause makes Parse, Matches or SQL panic and
// that SQL() output parses again to the same normalised SQL.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"i4 = 1", "1 x 1", "t LIKE 'a%' AND i8 IN (1, 2.5)", "ai @> '{1}' OR 5 = ANY(ai)",
		"i4 BETWEEN SYMMETRIC 5 AND 1", "t || i4 = 'x5'", "coalesce(i8, 5) > 2", "n / 3 > 1.5",
		"d + 1 > '2024-01-01'", "tz - '1 day'::interval < ts", "e = 'ok' AND j = '{}'", "by = '\\x00'",
		"(f4 * f8)::text = 'NaN'", "iv > 'PT1H'", "u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
		"NOT b IS NOT TRUE", "i4 = $1", "concat(t, NULL, b) = 'x'", "\"Mixed Case\" = 1",
		"n ^ 0.5 > 1", "f8 ^ i2 < 3", "(i4 & 3) # ~i2 = 1", "|/ f8 > @ n", "ai || 5 @> '{5}'", "array_prepend(t, at) && '{x}'",
		"array_ndims(array_cat(ai, NULL)) = 1", "ts AT TIME ZONE 'Europe/Berlin' > d", "justify_interval(iv * 1.5) > '1 day'",
		"like(t, 'a%')", "i4 NOT IN (1, NULL)", "d NOT BETWEEN SYMMETRIC tz AND NULL",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	g := &gen{r: rand.New(rand.NewSource(1))}
	for i := 0; i < 50; i++ {
		f.Add(g.pred(3))
	}
	var cols []Column
	for _, c := range testColumns {
		cols = append(cols, c.col)
	}
	f.Fuzz(func(t *testing.T, clause string) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("input takes over 10s: %q", clause))
			}
		}()
		e, err := Parse(clause, cols, map[string]string{"1": "5"})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse(%q) returned %T, want *Error", clause, err)
			}
			return
		}
		for _, r := range fuzzRows {
			_, _ = e.Matches(r)
		}
		sql := e.SQL()
		e2, err := Parse(sql, cols, nil)
		if err != nil {
			t.Fatalf("SQL() of %q does not parse: %s: %v", clause, sql, err)
		}
		if sql2 := e2.SQL(); sql2 != sql {
			t.Fatalf("SQL() not stable for %q:\n  %s\n  %s", clause, sql, sql2)
		}
	})
}

// TestNumericLimits: numeric arithmetic keeps Postgres' limits (at most
// 131,072 digits before the point, at most 16,383 after it, rounded half
// away from zero), so a clause that builds huge numbers errors as in
// Postgres instead of computing for minutes on every row. A constant part
// that overflows is refused when the clause is parsed. The expectations
// were checked in psql (PostgreSQL 15).
func TestNumericLimits(t *testing.T) {
	factors := func(f string, n int) string { return "(" + strings.Repeat(f+" * ", n-1) + f + ")" }
	one := "(id - 4)::numeric"                          // 1, but only known per row
	big131 := one + " * " + factors("1e1000", 131)      // 10^131000
	nines := "(" + big131 + " * 1e71 * 9)"              // 9 × 10^131071: 131,072 digits, the most there can be
	tiny := factors("1e-1000", 16) + " * 1e-383 * 1e-1" // 10^-16384
	tests := []struct {
		clause        string
		want, evalErr bool
		parseErr      bool
	}{
		{clause: big131 + " > 0", want: true},
		{clause: big131 + " * 1e1000 > 0", evalErr: true},
		{clause: big131 + " * " + factors("1e1000", 131) + " > 0", evalErr: true}, // refused before multiplying
		{clause: factors("1e1000", 132) + " > 0", parseErr: true},
		{clause: one + " * 5 * " + tiny + " > 0", want: true}, // 5 × 10^-16384 rounds up to 10^-16383
		{clause: one + " * 4 * " + tiny + " > 0", want: false},
		{clause: nines + " > 0", want: true},
		{clause: nines + " + " + nines + " > 0", evalErr: true},
		{clause: nines + " - " + nines + " = 0", want: true},
		{clause: big131 + " / 1e-1000 > 0", evalErr: true},
	}
	row := MapRow{"id": sp("5")}
	for _, tt := range tests {
		e, err := Parse(tt.clause, unitCols, nil)
		if (err != nil) != tt.parseErr {
			t.Errorf("Parse(%.60q…): %v; want error %v", tt.clause, err, tt.parseErr)
		}
		if err != nil {
			continue
		}
		got, err := e.Matches(row)
		if got != tt.want || (err != nil) != tt.evalErr {
			t.Errorf("%.60q…: Matches = %v, %v; want %v (error %v)", tt.clause, got, err, tt.want, tt.evalErr)
		}
	}
}

// TestRedacted: an evaluation error keeps its message and loses the
// value it quotes (a row's value must not reach the log).
func TestRedacted(t *testing.T) {
	got := Redacted(errorf("invalid input syntax for type %s: %q", "integer", `secret "x" \ value`))
	if strings.Contains(got, "secret") || !strings.Contains(got, "invalid input syntax for type integer") {
		t.Fatalf("Redacted = %q", got)
	}
}

// TestCommonTypeErrorPosition: a COALESCE, GREATEST/LEAST or ARRAY whose
// arguments have no common type is reported at the argument that does not
// fit, where Postgres reports it (TestDifferential, WHERE_SEED=
// 1796646185841549079: our error was at 0, Postgres' at 27). The positions
// were read from Postgres 15 (psql's caret) for `SELECT id FROM t WHERE
// <clause>` on a table of these columns.
func TestCommonTypeErrorPosition(t *testing.T) {
	for _, c := range []struct {
		clause string
		want   int
	}{
		{"coalesce(coalesce(x, id), least('7', '7')) = 1", 26},
		{"coalesce(x, name) = 1", 12},
		{"greatest(1, flag)", 12},
		{"ARRAY[1, name || 'a'] = ARRAY[1]", 9}, // the leftmost of name || 'a'
		{"coalesce(x, 1 + flag::int, name) = 1", 27},
	} {
		_, err := Parse(c.clause, unitCols, nil)
		var we *Error
		if !errors.As(err, &we) || !we.HasLocation || we.Location != c.want {
			t.Errorf("%q: got %v, want an error at %d", c.clause, err, c.want)
		}
	}
}
