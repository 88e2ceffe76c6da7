package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	s3Table       = "s3_items"
	s3RowsPer     = 500
	s3InFlight    = 64
	s3Target      = "≥ 1 000 new shapes/s; 3 650 in ≤ 4 s; none fails (Electric 1.1.0, t2.medium: ≈ 450 shapes/s)"
	s3MaxWait     = 10 * time.Second // longest retry-after honoured
	s3StepTimeout = 3 * time.Minute
)

// runS3 measures concurrent shape creation: N distinct shapes owner_id = k
// (500 rows each) requested at once, at most s3InFlight in flight, until
// every one is up to date. Each N runs on a fresh volt serve (empty
// storage), so every shape is new and the open-files limit applies per N.
// 503s are retried after their retry-after. The baseline is Postgres
// running the same N queries with the same concurrency over pgx.
func runS3(ctx context.Context, env *Env, sizes []int) ([]Row, error) {
	maxN := 1
	for _, n := range sizes {
		if s8Feasible(n) {
			maxN = max(maxN, n)
		}
	}
	env.progress("S3: loading %s rows into %s", count(maxN*s3RowsPer), s3Table)
	if err := createS3Table(ctx, env, maxN); err != nil {
		return nil, err
	}
	pl := env.plot("s3", "S3: N new 500-row shapes requested concurrently (64 in flight)", "shapes N", "shapes/s until all up-to-date")
	var rows []Row
	for i, n := range sizes {
		if !s8Feasible(n) {
			reason := fmt.Sprintf("not run: %s shapes need ≈ %d open files in volt serve (%d per shape today), the limit is %d",
				count(n), n*s8FDsPerShape, s8FDsPerShape, fileLimit())
			rows = append(rows, Row{Scenario: "S3 concurrent shape creation", Params: s3Params(n), Volt: "FAILED: " + reason,
				Baseline: "–", Target: s3Target, Err: reason})
			continue
		}
		if i > 0 {
			if err := env.RestartServer(ctx); err != nil {
				return nil, err
			}
		}
		base, err := s3Baseline(ctx, env, n)
		if err != nil {
			return nil, fmt.Errorf("N = %d: baseline: %w", n, err)
		}
		r := s3Create(ctx, env, n)
		if died, err := env.revive(ctx); err != nil {
			return nil, err
		} else if died != "" {
			rows = append(rows, Row{Scenario: "S3 concurrent shape creation", Params: s3Params(n),
				Volt: fmt.Sprintf("FAILED: %s after %d of %d shapes", died, r.done.Load(), n), Baseline: "–", Target: s3Target, Err: died})
			continue
		}
		env.progress("S3: N=%d: %s; Postgres alone %s", n, r, base)
		pl.add("volt shapes/s", float64(n), r.perSec())
		pl.add("Postgres queries/s (baseline)", float64(n), base.perSec())
		pl.hline("target 1 000 shapes/s", 1000)
		rows = append(rows, s3Row(n, r, base))
	}
	return rows, nil
}

// createS3Table makes s3_items with 500 rows per owner_id 0..n-1, stored
// owner by owner and indexed on owner_id.
func createS3Table(ctx context.Context, env *Env, n int) error {
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE %s (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`, s3Table),
		fmt.Sprintf(`INSERT INTO %s SELECT g, (g - 1) / %d, 'name ' || g, 'issue title number ' || g,
			CASE WHEN g %% 3 = 0 THEN 'closed' ELSE 'open' END, g %% 5 FROM generate_series(1, %d) g`, s3Table, s3RowsPer, n*s3RowsPer),
		fmt.Sprintf(`CREATE INDEX ON %s (owner_id)`, s3Table),
		fmt.Sprintf(`VACUUM (ANALYZE) %s`, s3Table),
	}
	for _, s := range stmts {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create %s: %w", s3Table, err)
		}
	}
	return nil
}

// s3Result is one N: how long all shapes took and what went wrong.
type s3Result struct {
	n        int
	took     time.Duration
	done     atomic.Int64 // shapes up to date with 500 rows
	status   atomic.Int64 // 503 answers
	retries  atomic.Int64 // requests repeated after a 503
	failures atomic.Int64 // shapes given up on
	mu       sync.Mutex
	errs     map[string]int // failure kinds
}

func (r *s3Result) perSec() float64 { return float64(r.done.Load()) / r.took.Seconds() }

func (r *s3Result) fail(kind string) {
	r.failures.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs == nil {
		r.errs = map[string]int{}
	}
	r.errs[kind]++
}

func (r *s3Result) String() string {
	return fmt.Sprintf("%s (%d of %d in %s); %s", rate(r.perSec(), "shapes"), r.done.Load(), r.n, ms(r.took), r.problems())
}

func (r *s3Result) problems() string {
	s := fmt.Sprintf("503s %d (%d retries after retry-after), failures %d", r.status.Load(), r.retries.Load(), r.failures.Load())
	r.mu.Lock()
	defer r.mu.Unlock()
	var kinds []string
	for k, c := range r.errs {
		kinds = append(kinds, fmt.Sprintf("%d× %s", c, k))
	}
	if len(kinds) > 0 {
		s += " (" + strings.Join(kinds, "; ") + ")"
	}
	return s
}

// s3Create requests the n shapes owner_id = 0..n-1, s3InFlight at a time.
func s3Create(ctx context.Context, env *Env, n int) *s3Result {
	ctx, cancel := context.WithTimeout(ctx, s3StepTimeout)
	defer cancel()
	client := newClient(s3InFlight)
	defer client.CloseIdleConnections()
	r := &s3Result{n: n}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(n, s3InFlight) {
		wg.Go(func() {
			var buf bytes.Buffer
			for k := next.Add(1) - 1; k < int64(n); k = next.Add(1) - 1 {
				q := newShapeReq(env.URL, s3Table, "owner_id = "+strconv.FormatInt(k, 10))
				s3Sync(ctx, client, q, r, &buf)
			}
		})
	}
	wg.Wait()
	r.took = time.Since(start)
	return r
}

// s3Sync syncs one shape from offset -1 to up-to-date, honouring the
// retry-after of 503 answers, and records the outcome in r.
func s3Sync(ctx context.Context, client *http.Client, q shapeReq, r *s3Result, buf *bytes.Buffer) {
	st, rows := startState(), 0
	for ctx.Err() == nil {
		status, p, wait, err := getStatus(ctx, client, q.url(st, false), buf)
		switch {
		case err != nil:
			r.fail(errKind(err))
			return
		case status == http.StatusServiceUnavailable:
			r.status.Add(1)
			if !sleepCtx(ctx, wait) {
				r.fail("gave up retrying: " + context.Cause(ctx).Error())
				return
			}
			r.retries.Add(1)
			continue
		case status != http.StatusOK:
			r.fail(fmt.Sprintf("status %d: %.120s", status, buf.Bytes()))
			return
		}
		rows += bytes.Count(p.body, insertMarker)
		st.advance(p)
		if p.upToDate() {
			if rows != s3RowsPer {
				r.fail(fmt.Sprintf("%d rows, want %d", rows, s3RowsPer))
				return
			}
			r.done.Add(1)
			return
		}
	}
	r.fail("timed out: " + context.Cause(ctx).Error())
}

// getStatus makes one request like get, but returns non-200 answers with
// their status (and, for a 503, how long retry-after asks to wait) instead
// of an error.
func getStatus(ctx context.Context, client *http.Client, u string, buf *bytes.Buffer) (int, page, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, page{}, 0, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, page{}, 0, fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, page{}, 0, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, page{header: resp.Header, body: buf.Bytes(), received: time.Now()},
		retryAfter(resp.Header.Get("retry-after"), time.Now()), nil
}

// retryAfter is the wait a retry-after header asks for (seconds or an HTTP
// date), at least 50 ms and at most s3MaxWait; absent or invalid: 100 ms.
func retryAfter(v string, now time.Time) time.Duration {
	d := 100 * time.Millisecond
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 50*time.Millisecond), s3MaxWait)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errKind shortens a transport error to what it was, for counting.
func errKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case strings.Contains(err.Error(), "EOF"):
		return "connection closed (EOF)"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// s3Base is the baseline: Postgres running the shapes' queries.
type s3Base struct {
	n    int
	took time.Duration
	rows int64
}

func (b s3Base) perSec() float64 { return float64(b.n) / b.took.Seconds() }

func (b s3Base) String() string {
	return fmt.Sprintf("%s (%s, %s rows)", rate(b.perSec(), "queries"), ms(b.took), count(int(b.rows)))
}

// s3Baseline runs SELECT … WHERE owner_id = k for k = 0..n-1 on
// s3InFlight pgx connections (opened beforehand), s3InFlight at a time.
func s3Baseline(ctx context.Context, env *Env, n int) (s3Base, error) {
	cfg, err := pgxpool.ParseConfig(env.dbURL)
	if err != nil {
		return s3Base{}, err
	}
	cfg.MaxConns, cfg.MinConns = s3InFlight, s3InFlight
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return s3Base{}, fmt.Errorf("baseline pool: %w", err)
	}
	defer pool.Close()
	warm := make([]*pgxpool.Conn, 0, s3InFlight)
	for range s3InFlight {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return s3Base{}, fmt.Errorf("baseline connection: %w", err)
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		c.Release()
	}
	var next, rows atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(n, s3InFlight) {
		wg.Go(func() {
			for k := next.Add(1) - 1; k < int64(n) && ctx.Err() == nil; k = next.Add(1) - 1 {
				got, err := s3Query(ctx, pool, k)
				if err != nil {
					cancel(err)
					return
				}
				rows.Add(got)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return s3Base{}, err
	}
	b := s3Base{n: n, took: time.Since(start), rows: rows.Load()}
	if want := int64(n * s3RowsPer); b.rows != want {
		return b, fmt.Errorf("read %d rows, want %d", b.rows, want)
	}
	return b, nil
}

func s3Query(ctx context.Context, pool *pgxpool.Pool, k int64) (int64, error) {
	rs, err := pool.Query(ctx, `SELECT id, owner_id, name, title, status, priority FROM `+s3Table+` WHERE owner_id = $1`, k)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	var n int64
	for rs.Next() {
		n++
	}
	return n, rs.Err()
}

func s3Params(n int) string {
	return fmt.Sprintf("N=%s new shapes `owner_id = k`, %d rows each, all requested at once with ≤ %d in flight, from offset=-1 to up-to-date; 503s retried after retry-after",
		count(n), s3RowsPer, s3InFlight)
}

func s3Row(n int, r *s3Result, base s3Base) Row {
	row := Row{
		Scenario: "S3 concurrent shape creation",
		Params:   s3Params(n),
		Volt:     r.String(),
		Baseline: "Postgres, the same queries over pgx: " + base.String(),
		Ratio:    ratio(r.perSec(), base.perSec()), RatioOf: "shapes/s ÷ queries/s",
		Target:    s3Target,
		VoltValue: r.perSec(), BaselineValue: base.perSec(),
	}
	if f := r.failures.Load(); f > 0 {
		row.Volt = "FAILED: " + row.Volt
		row.Err = fmt.Sprintf("%d of %d shapes failed", f, n)
	}
	return row
}
