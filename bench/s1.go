package bench

import (
	"context"
	"fmt"
	"time"
)

const (
	s1ColdTarget = "cold: ≥ 285 k rows/s (1M rows ≤ 3.5 s); RSS ≤ 150 MB"
	s1WarmTarget = "warm: ≥ 200 MB/s over loopback"
)

// runS1 measures initial sync: a fresh client fetches a whole table shape
// from offset -1 to up-to-date, cold (the request creates the shape and its
// snapshot) and warm (a second client, served from the shape log). The
// baseline is Postgres' COPY of the same rows to the same process.
func runS1(ctx context.Context, env *Env, sizes []int) ([]Row, error) {
	var rows []Row
	for _, n := range sizes {
		r, err := s1Size(ctx, env, n)
		if err != nil {
			return nil, fmt.Errorf("%s rows: %w", count(n), err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// s1Timing is one timed read of the whole table.
type s1Timing struct {
	dur   time.Duration
	rows  int
	bytes int64
}

func (t s1Timing) rowsPerSec() float64 { return float64(t.rows) / t.dur.Seconds() }

func s1Size(ctx context.Context, env *Env, n int) ([]Row, error) {
	table := fmt.Sprintf("s1_items_%d", n)
	env.progress("S1: loading %s rows into %s", count(n), table)
	if err := createItems(ctx, env, table, n); err != nil {
		return nil, err
	}
	base, err := copyTable(ctx, env, table)
	if err != nil {
		return nil, err
	}
	q := newShapeReq(env.URL, table, "")
	cold, err := timedSync(ctx, q, n)
	if err != nil {
		return nil, fmt.Errorf("cold sync: %w", err)
	}
	coldRSS, _, err := env.ServerMemory()
	if err != nil {
		return nil, err
	}
	warm, err := timedSync(ctx, q, n)
	if err != nil {
		return nil, fmt.Errorf("warm sync: %w", err)
	}
	warmRSS, peak, err := env.ServerMemory()
	if err != nil {
		return nil, err
	}
	env.progress("S1: %s rows: COPY %s, cold %s, warm %s, RSS %s (peak %s)", count(n), base.dur, cold.dur, warm.dur, mib(warmRSS), mib(peak))
	return []Row{
		s1Row("S1 initial sync, cold", n, cold, base, fmt.Sprintf("RSS %s after", mib(coldRSS)), s1ColdTarget),
		s1Row("S1 initial sync, warm", n, warm, base, fmt.Sprintf("%s, RSS %s, peak %s", mbps(warm.bytes, warm.dur), mib(warmRSS), mib(peak)), s1WarmTarget),
	}, nil
}

func s1Row(name string, n int, v, base s1Timing, extra, target string) Row {
	return Row{
		Scenario: name,
		Params:   fmt.Sprintf("%s rows, 6 columns", count(n)),
		Volt:     fmt.Sprintf("%s (%s); %s", rate(v.rowsPerSec(), "rows"), ms(v.dur), extra),
		Baseline: fmt.Sprintf("COPY %s (%s)", rate(base.rowsPerSec(), "rows"), ms(base.dur)),
		Ratio:    ratio(v.rowsPerSec(), base.rowsPerSec()), RatioOf: "rows/s",
		Target:    target,
		VoltValue: v.rowsPerSec(), BaselineValue: base.rowsPerSec(),
	}
}

// timedSync times one fresh client's sync of q and checks the row count.
func timedSync(ctx context.Context, q shapeReq, want int) (s1Timing, error) {
	client := newClient(1)
	defer client.CloseIdleConnections()
	start := time.Now()
	res, err := syncShape(ctx, client, q)
	if err != nil {
		return s1Timing{}, err
	}
	t := s1Timing{dur: time.Since(start), rows: res.rows, bytes: res.bytes}
	if res.rows != want {
		return t, fmt.Errorf("synced %d rows, want %d", res.rows, want)
	}
	return t, nil
}

// createItems creates table with n rows of the items schema of
// performance.md §6 (≈ 60 bytes of data per row) and vacuums it, so both
// the baseline and volt read it from cache with hint bits set.
func createItems(ctx context.Context, env *Env, table string, n int) error {
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE %s (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`, table),
		fmt.Sprintf(`INSERT INTO %s SELECT g, g %% 1000, 'name ' || g, 'issue title number ' || g,
			CASE WHEN g %% 3 = 0 THEN 'closed' ELSE 'open' END, g %% 5 FROM generate_series(1, %d) g`, table, n),
		fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', 'id'), %d)`, table, max(n, 1)),
		fmt.Sprintf(`VACUUM (ANALYZE) %s`, table),
	}
	for _, s := range stmts {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create %s: %w", table, err)
		}
	}
	return nil
}

// copyTable times COPY (SELECT every column) TO STDOUT into this process.
func copyTable(ctx context.Context, env *Env, table string) (s1Timing, error) {
	conn, err := env.Pool.Acquire(ctx)
	if err != nil {
		return s1Timing{}, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	var w countWriter
	start := time.Now()
	tag, err := conn.Conn().PgConn().CopyTo(ctx, &w,
		fmt.Sprintf(`COPY (SELECT id, owner_id, name, title, status, priority FROM %s) TO STDOUT`, table))
	if err != nil {
		return s1Timing{}, fmt.Errorf("copy %s: %w", table, err)
	}
	return s1Timing{dur: time.Since(start), rows: int(tag.RowsAffected()), bytes: w.n}, nil
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
