package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

const (
	s15Table      = "s15_items" // written through POST /v1/mutations
	s15PlainTable = "s15_plain" // the INSERT baseline's table
	s15PlainConns = 20
	s15Target     = "p99 ≤ 50 ms"
)

// runS15 is the write storm: n clients, each its own client_id and
// HTTP/1.1 keep-alive connection, each writing one single-insert
// transaction per second for d (their starts spread over the first
// second). Baseline of the same run: n goroutines writing one plain
// autocommit INSERT per second each through a pool of s15PlainConns
// connections.
func runS15(ctx context.Context, env *Env, n int, d time.Duration) ([]Row, error) {
	for _, t := range []string{s15Table, s15PlainTable} {
		q := fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, owner text NOT NULL, title text NOT NULL, n bigint NOT NULL)`, t)
		if _, err := env.Pool.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("create S15 tables: %w", err)
		}
	}
	var ids atomic.Int64
	cfg, err := pgxpool.ParseConfig(env.dbURL)
	if err != nil {
		return nil, fmt.Errorf("pool config: %w", err)
	}
	cfg.MaxConns, cfg.MinConns = s15PlainConns, s15PlainConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("baseline pool: %w", err)
	}
	defer pool.Close()
	sql := `INSERT INTO ` + s15PlainTable + ` (id, owner, title, n) VALUES ($1, $2, $3, $4)`
	plain, err := s15Storm(ctx, env, n, d, func(i int) func(ctx context.Context, k int64) (int, error) {
		owner := fmt.Sprintf("s15-plain-%d", i)
		return func(ctx context.Context, k int64) (int, error) {
			_, err := pool.Exec(ctx, sql, ids.Add(1), owner, s10Title, k)
			return 0, err
		}
	})
	if err != nil {
		return nil, fmt.Errorf("INSERT baseline: %w", err)
	}
	env.progress("S15: %d clients, INSERT on %d connections %s, %s", n, s15PlainConns, plain.lat.full(), rate(plain.perSec(), "inserts"))
	client := newClient(n)
	defer client.CloseIdleConnections()
	storm, err := s15Storm(ctx, env, n, d, func(i int) func(ctx context.Context, k int64) (int, error) {
		w := &mutationWriter{client: client, url: env.URL + volt.MutationsPath, clientID: fmt.Sprintf("bench-s15-%d", i), table: s15Table}
		owner := fmt.Sprintf("s15-%d", i)
		return func(ctx context.Context, _ int64) (int, error) { return w.insert(ctx, ids.Add(1), owner) }
	})
	if err != nil {
		return nil, fmt.Errorf("volt: %w", err)
	}
	env.progress("S15: %d clients, volt %s, %s", n, storm.lat.full(), rate(storm.perSec(), "writes"))
	return []Row{{
		Scenario: "S15 write storm",
		Params: fmt.Sprintf("%d clients, each its own client_id and HTTP/1.1 keep-alive connection, "+
			"one 1-insert transaction per second each for %s; timed from sending to the answer", n, d),
		Volt: fmt.Sprintf("%s; %s accepted (%d in %s)", storm.lat.full(), rate(storm.perSec(), "writes"),
			storm.writes, storm.elapsed.Round(time.Millisecond)) + retriesText(storm.retries) + pgText(storm),
		Baseline: fmt.Sprintf("INSERT over pgx, %d goroutines on a %d-connection pool: %s; %s (%d)", n, s15PlainConns,
			plain.lat.full(), rate(plain.perSec(), "inserts"), plain.writes) + pgText(plain),
		Ratio: ratio(msf(storm.lat.p50), msf(plain.lat.p50)), RatioOf: "p50",
		MoreRatios: []ExtraRatio{
			{Of: "p99", Value: ratio(msf(storm.lat.p99), msf(plain.lat.p99))},
			{Of: "writes/s", Value: ratio(storm.perSec(), plain.perSec())},
			{Of: "Postgres CPU per write", Value: ratio(storm.pgPerWrite(), plain.pgPerWrite())},
		},
		Target:    s15Target,
		VoltValue: msf(storm.lat.p50), BaselineValue: msf(plain.lat.p50),
	}}, nil
}

// s15Storm runs n writers, writer i sending its k-th write at start +
// i/n s + k s until d is over (late writes go at once, so a slow answer
// lowers the rate instead of piling up), and pools their latencies with
// Postgres' CPU time. The first error stops them all.
func s15Storm(ctx context.Context, env *Env, n int, d time.Duration, writer func(i int) func(ctx context.Context, k int64) (int, error)) (s10Run, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	writes := make([]func(ctx context.Context, k int64) (int, error), n)
	for i := range writes {
		writes[i] = writer(i)
	}
	samples := make([][]s10Sample, n)
	pg := env.postgresCPU()
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i, write := range writes {
		wg.Go(func() {
			next := start.Add(time.Duration(i) * time.Second / time.Duration(n))
			for k := int64(1); next.Before(end); k++ {
				select {
				case <-time.After(time.Until(next)):
				case <-ctx.Done():
					return
				}
				sent := time.Now()
				retries, err := write(ctx, k)
				if err != nil {
					cancel(fmt.Errorf("writer %d: %w", i, err))
					return
				}
				lat := time.Since(sent)
				samples[i] = append(samples[i], s10Sample{lat: lat, post: lat, retries: retries})
				next = next.Add(time.Second)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return s10Run{}, err
	}
	r := pool(samples, elapsed)
	r.pgCPU = max(0, env.postgresCPU()-pg)
	return r, nil
}
