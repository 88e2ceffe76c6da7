package where

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/voltsync/volt/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var displaySettings = []string{
	"SET bytea_output = 'hex'", "SET DateStyle = 'ISO, DMY'", "SET TimeZone = 'UTC'",
	"SET extra_float_digits = 1", "SET IntervalStyle = 'iso_8601'",
}

// testSeed returns the seed of a randomised test: WHERE_SEED if set, else
// the clock. It logs it, so that any failure can be replayed.
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("WHERE_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("WHERE_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with WHERE_SEED=%d)", seed, seed)
	return seed
}

// randomValue returns a column value in Postgres input syntax, or nil.
func randomValue(r *rand.Rand, col string) *string {
	if r.Intn(7) == 0 {
		return nil
	}
	v := pick(r, sampleValues[col]...)
	if r.Intn(2) == 0 {
		switch col {
		case "i2", "i4", "i8":
			v = strconv.Itoa(r.Intn(2001) - 1000)
		case "f8", "f4":
			v = strconv.FormatFloat(r.NormFloat64()*100, 'g', -1, 64)
		case "n":
			v = fmt.Sprintf("%d.%0*d", r.Intn(20001)-10000, r.Intn(4)+1, r.Intn(1000))
		case "t", "v":
			var b strings.Builder
			for i := r.Intn(5); i > 0; i-- {
				b.WriteString(pick(r, "a", "b", "A", "ä", "_", "%", " ", `\`, "c", "x"))
			}
			v = b.String()
		case "d":
			v = time.Date(1990+r.Intn(40), time.Month(1+r.Intn(12)), 1+r.Intn(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
		case "ts", "tz":
			v = time.Unix(r.Int63n(2e9), int64(r.Intn(1000))*1000).UTC().Format("2006-01-02 15:04:05.999999")
		}
	}
	return &v
}

type dbRow struct {
	id   int
	vals map[string]*string
}

func (d dbRow) row() MapRow { return MapRow(d.vals) }

// setupTable creates and fills the test table, returning the rows as
// Postgres' text output.
func setupTable(t *testing.T, ctx context.Context, conn *pgx.Conn, r *rand.Rand, n int) []dbRow {
	var defs []string
	for _, c := range testColumns {
		defs = append(defs, quoteIdent(c.name)+" "+c.sqlType)
	}
	mustExec(t, ctx, conn, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
	mustExec(t, ctx, conn, "CREATE TABLE t (id int PRIMARY KEY, "+strings.Join(defs, ", ")+")")
	var tuples []string
	for i := 1; i <= n; i++ {
		vals := []string{strconv.Itoa(i)}
		for _, c := range testColumns {
			v := randomValue(r, c.name)
			if v == nil {
				vals = append(vals, "NULL")
			} else {
				vals = append(vals, quoteLiteral(*v))
			}
		}
		tuples = append(tuples, "("+strings.Join(vals, ", ")+")")
	}
	mustExec(t, ctx, conn, "INSERT INTO t VALUES "+strings.Join(tuples, ", "))
	return readRows(t, ctx, conn, r)
}

func mustExec(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// readRows reads every row back with the text result format (raw output
// functions, as pgoutput sends them); booleans are randomly rewritten to
// the bool::text spelling, which must work too.
func readRows(t *testing.T, ctx context.Context, conn *pgx.Conn, r *rand.Rand) []dbRow {
	var names []string
	for _, c := range testColumns {
		names = append(names, quoteIdent(c.name))
	}
	res := conn.PgConn().ExecParams(ctx, "SELECT id, "+strings.Join(names, ", ")+" FROM t ORDER BY id", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var rows []dbRow
	for _, raw := range res.Rows {
		id, _ := strconv.Atoi(string(raw[0]))
		d := dbRow{id: id, vals: map[string]*string{}}
		for i, c := range testColumns {
			if raw[i+1] == nil {
				d.vals[c.name] = nil
				continue
			}
			s := string(raw[i+1])
			if c.name == "b" && r.Intn(2) == 0 {
				s = map[string]string{"t": "true", "f": "false"}[s]
			}
			d.vals[c.name] = &s
		}
		rows = append(rows, d)
	}
	return rows
}

func pgIDs(ctx context.Context, conn *pgx.Conn, where string) ([]int, error) {
	rows, err := conn.Query(ctx, "SELECT id FROM t WHERE "+where+" ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

var literalRe = regexp.MustCompile(`'(?:[^']|'')*'`)

// parametrize replaces the first string literal not followed by a cast
// with $1, returning the new clause and params (or ok=false).
func parametrize(clause string) (string, map[string]string, bool) {
	for _, loc := range literalRe.FindAllStringIndex(clause, -1) {
		if strings.HasPrefix(clause[loc[1]:], "::") {
			continue
		}
		lit := clause[loc[0]+1 : loc[1]-1]
		return clause[:loc[0]] + "$1" + clause[loc[1]:], map[string]string{"1": strings.ReplaceAll(lit, "''", "'")}, true
	}
	return "", nil, false
}

func TestDifferential(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewSource(seed))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range displaySettings {
		mustExec(t, ctx, conn, s)
	}
	rows := setupTable(t, ctx, conn, r, 100)
	mustExec(t, ctx, conn, verdictsFunc)
	var cols []Column
	for _, c := range testColumns {
		cols = append(cols, c.col)
	}
	cols = append(cols, Column{Name: "id", Type: "int4"})
	g := &gen{r: r}
	st := &diffStats{}
	n, deadline := 3000, time.Now().Add(6*time.Second)
	if s := os.Getenv("WHERE_CLAUSES"); s != "" {
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(24 * time.Hour)
	}
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		clause := g.pred(3)
		checkClause(t, ctx, conn, rows, cols, clause, st)
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
	t.Logf("clauses %d x rows %d: compared %d (%d with $1; %d row by row after a Postgres runtime error, %d rows with no Postgres verdict, %d rows too costly for volt), both rejected %d, matched rows %d",
		st.total, len(rows), st.compared, st.params, st.pgErr, st.errRows, st.costly, st.bothErr, st.matched)
	if st.compared < st.total/2 {
		t.Errorf("only %d of %d clauses could be compared", st.compared, st.total)
	}
}

type diffStats struct{ total, compared, params, pgErr, bothErr, matched, errRows, costly int }

func checkClause(t *testing.T, ctx context.Context, conn *pgx.Conn, rows []dbRow, cols []Column, clause string, st *diffStats) {
	t.Helper()
	st.total++
	want, pgErr := pgIDs(ctx, conn, clause)
	parsed, params := clause, map[string]string(nil)
	if p, ps, ok := parametrize(clause); ok && st.total%3 == 0 {
		parsed, params = p, ps
	}
	e, err := Parse(parsed, cols, params)
	switch {
	case err != nil && pgErr != nil:
		st.bothErr++
		checkLocation(t, clause, parsed, err, pgErr)
		if os.Getenv("WHERE_VERBOSE") != "" {
			t.Logf("both reject %q: %v | %v", clause, err, pgErr)
		}
		return
	case err != nil:
		t.Errorf("Parse(%q, %v) failed but Postgres accepts it: %v", parsed, params, err)
		return
	case pgErr != nil && isSemantic(pgErr):
		t.Errorf("Postgres rejects %q (%v) but Parse(%q, %v) accepts it", clause, pgErr, parsed, params)
		return
	}
	if params != nil {
		st.params++
	}
	st.compared++
	// Postgres' verdict per row: "t", "f", "n" (NULL) or "e" (error)
	verdict := map[int]string{}
	if pgErr != nil {
		st.pgErr++
		var err error
		if verdict, err = pgVerdicts(ctx, conn, clause); err != nil {
			t.Fatalf("verdicts(%q): %v", clause, err)
		}
	} else {
		for _, id := range want {
			verdict[id] = "t"
		}
	}
	for _, row := range rows {
		ok, err := e.Matches(row.row())
		if ok {
			st.matched++
		}
		v := verdict[row.id]
		if errors.Is(err, ErrTooCostly) {
			// volt refuses the row by design (a shape is removed
			// with 409 then); Postgres may compute it.
			st.costly++
			continue
		}
		if v == "e" {
			// Postgres gives no verdict: the row fails the whole SELECT.
			// Which operand errors first depends on the planner's order
			// of evaluation, which volt does not imitate.
			st.errRows++
			continue
		}
		if ok != (v == "t") {
			t.Errorf("clause %q (params %v)\n  SQL %s\n  row %d: %s\n  volt matches=%v (err %v), Postgres verdict %s",
				parsed, params, e.SQL(), row.id, rowValues(row, e.Columns()), ok, err, verdictName(v))
		}
	}
	if pgErr != nil || t.Failed() {
		return
	}
	viaSQL, err := pgIDs(ctx, conn, e.SQL())
	var pe *pgconn.PgError
	if errors.As(err, &pe) && !strings.HasPrefix(pe.Code, "42") {
		return // a runtime error the original query's evaluation order avoided
	}
	if err != nil || !sameInts(viaSQL, want) {
		t.Errorf("clause %q: SQL() %s gives %v, %v; want %v", parsed, e.SQL(), viaSQL, err, want)
	}
}

// verdictsFunc evaluates a condition on each row of t separately, so that a
// runtime error on one row (which fails a whole SELECT) yields "e" for that
// row only.
const verdictsFunc = `CREATE FUNCTION verdicts(cond text) RETURNS TABLE(rid int, v text) LANGUAGE plpgsql AS $$
DECLARE r int; b bool;
BEGIN
  FOR r IN SELECT id FROM t ORDER BY id LOOP
    rid := r;
    BEGIN
      EXECUTE 'SELECT (' || cond || ') FROM t WHERE id = $1' INTO b USING r;
      v := CASE WHEN b THEN 't' WHEN NOT b THEN 'f' ELSE 'n' END;
    EXCEPTION WHEN OTHERS THEN
      v := 'e';
    END;
    RETURN NEXT;
  END LOOP;
END $$`

func pgVerdicts(ctx context.Context, conn *pgx.Conn, clause string) (map[int]string, error) {
	rows, err := conn.Query(ctx, "SELECT rid, v FROM verdicts($1)", clause)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var id int
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return nil, err
		}
		out[id] = v
	}
	return out, rows.Err()
}

func verdictName(v string) string {
	switch v {
	case "t":
		return "TRUE (match)"
	case "e":
		return "runtime error (no match)"
	case "n":
		return "NULL (no match)"
	}
	return "FALSE or NULL (no match)"
}

// isSemantic reports whether a Postgres error is a parse/analysis error
// (SQLSTATE class 42), which volt must report from Parse too.
func isSemantic(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "42")
}

func sameInts(a, b []int) bool {
	sort.Ints(a)
	sort.Ints(b)
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// checkLocation compares our error location with Postgres' error position
// for the same clause (ASCII clauses without parameters only, since
// Postgres counts characters and we count bytes).
func checkLocation(t *testing.T, clause, parsed string, err, pgErr error) {
	t.Helper()
	var pe *pgconn.PgError
	we, ok := err.(*Error)
	if !ok || !we.HasLocation || !errors.As(pgErr, &pe) || pe.Position == 0 || clause != parsed || strings.HasPrefix(we.Message, "syntax error") {
		return
	}
	for _, c := range clause {
		if c > 127 {
			return
		}
	}
	if want := int(pe.Position) - 1 - len("SELECT id FROM t WHERE "); want != we.Location {
		t.Errorf("%q: our error %q is at %d, Postgres' %q at %d", clause, err, we.Location, pe.Message, want)
	}
}
