package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// TestDifferentialShapes runs random inserts, updates (including primary
// key changes) and deletes in random transactions while random shapes are
// created (so their snapshots race the writes), then checks that replaying
// each shape's log gives exactly what Postgres returns for the shape's
// query, and that no change was ever doubled or lost on the way.
func TestDifferentialShapes(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE t (id int PRIMARY KEY, a int, b text, c bool, d numeric(8,2))`)
	seedRows(t, db, rng, 300)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s", "VOLT_CHUNK_BYTES=8192")

	var stopped atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			randomTransactions(t, db, &stopped, rand.New(rand.NewPCG(seed, uint64(w+2))))
		}(w)
	}
	type subject struct {
		f     *follower
		query string
	}
	var subjects []subject
	for i := 0; i < 16; i++ {
		where, cols, replica := randomShape(rng)
		params := []string{"table", "t", "replica", replica}
		if where != "" {
			params = append(params, "where", where)
		}
		if cols != "*" {
			params = append(params, "columns", cols)
		}
		q := "SELECT " + cols + " FROM t"
		if where != "" {
			q += " WHERE " + where
		}
		f := newFollower(v, params...)
		f.poll(t) // creates the shape: its snapshot runs while the writers write
		subjects = append(subjects, subject{f, q})
		for _, s := range subjects {
			if !s.f.upToDate {
				s.f.poll(t) // catch-up requests run while the writers write, too
			}
		}
	}
	stopped.Store(true)
	wg.Wait()
	for _, s := range subjects {
		want := pgRows(t, db, "t", 1, s.query)
		s.f.pollUntil(t, s.query, func(rows map[string]map[string]*string) bool { return diffRows(rows, want) == "" })
		if len(s.f.violations) > 0 {
			t.Errorf("%s: %v", s.query, s.f.violations)
		}
	}
}

func seedRows(t *testing.T, db string, rng *rand.Rand, n int) {
	var b strings.Builder
	b.WriteString("INSERT INTO t VALUES ")
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "(%d, %s)", i, randomValues(rng))
	}
	pgtest.Exec(t, db, b.String())
}

func randomValues(rng *rand.Rand) string {
	a := "NULL"
	if rng.IntN(8) > 0 {
		a = fmt.Sprint(rng.IntN(40) - 10)
	}
	b := "NULL"
	if rng.IntN(8) > 0 {
		b = "'" + []string{"x", "xy", "Xy", "abc", "q", "", "x%z"}[rng.IntN(7)] + "'"
	}
	c := []string{"true", "false", "NULL"}[rng.IntN(3)]
	d := "NULL"
	if rng.IntN(6) > 0 {
		d = fmt.Sprintf("%d.%02d", rng.IntN(20)-5, rng.IntN(100))
	}
	return strings.Join([]string{a, b, c, d}, ", ")
}

var shapeClauses = []string{
	"", "a > 5", "a % 3 = 0", "b LIKE 'x%'", "b ILIKE 'x%'", "c", "c IS NULL", "NOT c", "a BETWEEN 0 AND 10 AND c",
	"d > 1.5 OR b = 'q'", "a IN (1, 2, 3, 4, 5)", "NOT (a < 5)", "a IS NOT NULL AND d < 0", "b <> 'x' AND a >= 2",
	"coalesce(a, 0) = 0", "c IS DISTINCT FROM true", "lower(b) = 'xy'", "a + 1 > 7 OR d IS NULL",
}

func randomShape(rng *rand.Rand) (where, cols, replica string) {
	where = shapeClauses[rng.IntN(len(shapeClauses))]
	cols = []string{"*", "id, a", "id, b, c", "id, a, d"}[rng.IntN(4)]
	if strings.Contains(where, "b") || strings.Contains(where, "c") || strings.Contains(where, "d") {
		cols = "*" // keep the comparison simple: a filtered column stays visible
	}
	replica = []string{"default", "full"}[rng.IntN(2)]
	return
}

// randomTransactions writes until ctx ends: 1–4 statements per transaction.
// randomTransactions writes until stopped is set, each transaction to its
// end (see writeRandomly: a cancelled COMMIT may still commit).
func randomTransactions(t *testing.T, db string, stopped *atomic.Bool, rng *rand.Rand) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Errorf("writer: %v", err)
		return
	}
	defer conn.Close(ctx)
	for !stopped.Load() {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Errorf("begin: %v", err)
			return
		}
		for n := rng.IntN(4) + 1; n > 0; n-- {
			id := rng.IntN(400) + 1
			var sql string
			switch rng.IntN(5) {
			case 0:
				sql = fmt.Sprintf("INSERT INTO t VALUES (%d, %s) ON CONFLICT (id) DO NOTHING", id, randomValues(rng))
			case 1, 2:
				sql = fmt.Sprintf("UPDATE t SET (a, b, c, d) = (%s) WHERE id = %d", randomValues(rng), id)
			case 3:
				sql = fmt.Sprintf("UPDATE t SET id = %d WHERE id = %d AND NOT EXISTS (SELECT 1 FROM t WHERE id = %d)", rng.IntN(400)+1, id, 0)
			default:
				sql = fmt.Sprintf("DELETE FROM t WHERE id = %d", id)
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				_ = tx.Rollback(ctx)
				if !strings.Contains(err.Error(), "duplicate key") && !strings.Contains(err.Error(), "deadlock") {
					t.Errorf("%s: %v", sql, err)
				}
				goto next
			}
		}
		if err := tx.Commit(ctx); err != nil && !strings.Contains(err.Error(), "deadlock") {
			t.Errorf("commit: %v", err)
		}
	next:
	}
}
