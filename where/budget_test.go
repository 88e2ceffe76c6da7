package where

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
)

// powLimitCases are numeric ^ operands at and around Postgres' limits:
// exp_var's overflow at e^6000 for non-integral exponents, power_var_int's
// at 131,072 digits, underflow to zero, negative bases with exponents
// beyond int32, and results past volt's MaxEvalDigits.
var powLimitCases = [][2]string{
	// TestOutputMatchesPostgres with WHERE_SEED=1796626214411556929: row
	// 9's n; Postgres overflows, volt gave a 2,608-digit number.
	{"2", "8663.17"},
	{"2", "8655.5"}, {"2", "8656.5"}, {"2", "-8655.5"}, {"2", "-8663.17"},
	{"10", "2605.7"}, {"10", "2605.8"}, {"0.5", "8000.5"}, {"3", "0.5"}, {"1.0001", "0.5"},
	{"2", "9999"}, {"2", "-9999"}, {"1.1", "32767"}, {"2.5", "5000"}, {"0", "0.5"}, {"0", "3"},
	{"-0.9", "3000000001"}, {"-1.0000001", "3000000000"}, {"-1.0000001", "3000000001"},
	{"0.9", "3000000000"}, {"1.0000000001", "60000000000000.5"}, {"1.0000000001", "1e20"},
	{"10.5", "140000"}, {"10", "131072"}, {"0.5", "-600000"},
	// Postgres computes these (tens of thousands of digits); volt refuses.
	{"1.5", "300000"}, {"5.5", "30000"}, {"9999.123", "32767"}, {"0.5", "-30000"},
}

// TestPowLimitsMatchPostgres compares a ^ b's text (or failure) with
// Postgres for every case. A refusal for cost (ErrTooCostly) is accepted
// only where Postgres' result has more than MaxEvalDigits digits, and
// must come before any big computation.
func TestPowLimitsMatchPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cols := []Column{{Name: "a", Type: "numeric"}, {Name: "b", Type: "numeric"}}
	e, err := Parse("(a ^ b)::text IS NULL", cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	val := e.root.(*testNode).arg
	refused := 0
	for _, c := range powLimitCases {
		var want string
		pgErr := conn.QueryRow(ctx, "SELECT ($1::numeric ^ $2::numeric)::text", c[0], c[1]).Scan(&want)
		row := MapRow{"a": &c[0], "b": &c[1]}
		start := time.Now()
		got, err := val.eval(&budgetRow{Row: row, left: EvalBudget})
		took := time.Since(start)
		name := c[0] + " ^ " + c[1]
		switch {
		case errors.Is(err, ErrTooCostly):
			refused++
			if pgErr != nil || len(want) <= MaxEvalDigits {
				t.Errorf("%s: refused as too costly (%v), but Postgres gives %.40q (%d characters) / %v", name, err, want, len(want), pgErr)
			}
			// A refusal takes microseconds; the bound leaves room for a
			// loaded machine's stalls.
			if took > 250*time.Millisecond {
				t.Errorf("%s: the refusal took %v; it must come before computing", name, took)
			}
		case pgErr != nil:
			if err == nil {
				t.Errorf("%s: Postgres fails (%v), volt gives %.40s… (%d characters)", name, pgErr, got, len(got.(string)))
			} else if !strings.Contains(pgErr.Error(), err.Error()) {
				t.Errorf("%s: Postgres fails with %v, volt with %v", name, pgErr, err)
			}
		case err != nil:
			t.Errorf("%s: volt fails (%v), Postgres gives %.40q", name, err, want)
		case got.(string) != want:
			t.Errorf("%s: volt gives %.60q (%d characters), Postgres %.60q (%d)", name, got, len(got.(string)), want, len(want))
		}
	}
	if refused != 4 {
		t.Errorf("%d cases refused as too costly, want the last 4", refused)
	}
}

func TestCostlyConstantFailsParse(t *testing.T) {
	cols := []Column{{Name: "n", Type: "numeric"}, {Name: "t", Type: "text"}}
	for _, clause := range []string{
		"n > 1.5 ^ 300000",
		"n = 1 OR n < (5.5 ^ 30000)::numeric",
		"false AND 9999.5 ^ 32767 > n", // refused although Postgres never evaluates it
	} {
		_, err := Parse(clause, cols, nil)
		if !errors.Is(err, ErrTooCostly) {
			t.Errorf("Parse(%q) = %v, want an error matching ErrTooCostly", clause, err)
		}
	}
	if _, err := Parse("n > 1.5 ^ 3000", cols, nil); err != nil {
		t.Errorf("a 529-digit constant power is refused: %v", err)
	}
}

func TestMatchesRefusesCostlyRows(t *testing.T) {
	cols := []Column{{Name: "n", Type: "numeric"}, {Name: "t", Type: "text"}}
	e, err := Parse("(n + 0.5) ^ 30000 > 0", cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n      string
		match  bool
		costly bool
	}{{"0.5", true, false}, {"0.6", true, false}, {"0.25", false, false}, {"-0.4", false, false}, {"10", false, true}, {"1000", false, true}, {"1e10", false, false}} {
		ok, err := e.Matches(MapRow{"n": &c.n})
		if ok != c.match || errors.Is(err, ErrTooCostly) != c.costly {
			t.Errorf("n = %s: Matches = %v, %v; want %v, costly %v", c.n, ok, err, c.match, c.costly)
		}
	}

	// Building ever longer strings: t || t || ... costs the square of
	// the chain's length.
	chain := func(k int) string {
		return "length(" + strings.Repeat("(", k) + "t" + strings.Repeat(" || t)", k) + ") > 0"
	}
	long := strings.Repeat("x", 1000)
	for _, c := range []struct {
		k      int
		costly bool
	}{{10, false}, {30, false}, {100, true}} {
		e, err := Parse(chain(c.k), cols, nil)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := e.Matches(MapRow{"t": &long})
		if errors.Is(err, ErrTooCostly) != c.costly || ok == c.costly {
			t.Errorf("chain of %d concatenations of 1,000 bytes: Matches = %v, %v; want costly %v", c.k, ok, err, c.costly)
		}
	}
	// A long value costs in proportion to its length, which is fine.
	huge := strings.Repeat("y", 4*EvalBudget)
	e, err = Parse("lower(t) || 'a' <> upper(t)", cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := e.Matches(MapRow{"t": &huge}); !ok || err != nil {
		t.Errorf("lower/upper of a %d-byte value: Matches = %v, %v", len(huge), ok, err)
	}
}

// LIKE with a pattern from the row costs up to the product of the
// lengths; past maxLikeSteps it is refused, while long values with short
// patterns are not.
func TestCostlyLike(t *testing.T) {
	cols := []Column{{Name: "t", Type: "text"}, {Name: "p", Type: "text"}}
	e, err := Parse("t LIKE p", cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("a", 200_000)
	// every position of t compares 2,000 characters before failing
	costly := "%" + strings.Repeat("a", 2000) + "b"
	start := time.Now()
	if ok, err := e.Matches(MapRow{"t": &text, "p": &costly}); ok || !errors.Is(err, ErrTooCostly) {
		t.Errorf("200,000 characters LIKE '%%a…ab' (2,000 a): Matches = %v, %v; want ErrTooCostly", ok, err)
	}
	t.Logf("refused after %v", time.Since(start))
	for _, p := range []string{strings.Repeat("%a", 2000) + "%b", "%" + strings.Repeat("a", 1000) + "%", "a%"} {
		if _, err := e.Matches(MapRow{"t": &text, "p": &p}); err != nil {
			t.Errorf("200,000 characters LIKE %.20q: %v", p, err)
		}
	}
	long := strings.Repeat("xy", 20_000_000)
	short := "%yx%z%"
	if ok, err := e.Matches(MapRow{"t": &long, "p": &short}); ok || err != nil {
		t.Errorf("40 MB LIKE %q: Matches = %v, %v; want false, nil", short, ok, err)
	}
}
