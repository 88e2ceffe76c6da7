package where

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

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
