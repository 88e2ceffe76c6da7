package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	pollInterval = 100 * time.Millisecond
	pollConns    = 16
	// maxNotifyListeners bounds the LISTEN/NOTIFY fan-out: one Postgres
	// backend per listener.
	maxNotifyListeners = 1000
	pollTarget         = "≥ 10× lower p50 than the 100 ms poller; Postgres load independent of the number of shapes"
	notifyTarget       = "match or beat LISTEN/NOTIFY"
)

// pollResult is the naive poller at K shapes.
type pollResult struct {
	lat     latencies
	queries int64
	elapsed time.Duration
	pgCPU   time.Duration
}

func (p pollResult) qps() float64 { return float64(p.queries) / p.elapsed.Seconds() }

// pgCores is Postgres' CPU over a phase in cores (1 = one core busy).
func pgCores(cpu, wall time.Duration) float64 { return cpu.Seconds() / wall.Seconds() }

// naivePoller is the baseline a sync service without replication would be:
// K goroutines, one per shape owner_id = k (k = 0..K-1), each re-running
// the shape's query every 100 ms over a pool of pollConns pgx connections.
// The poller of owner_id = 0 reports ids it has not seen before; commits
// into owner_id = 0 are timed to it as in S4.
func naivePoller(ctx context.Context, env *Env, table string, k, commits int) (pollResult, error) {
	cfg, err := pgxpool.ParseConfig(env.dbURL)
	if err != nil {
		return pollResult{}, err
	}
	cfg.MaxConns = pollConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return pollResult{}, fmt.Errorf("poller pool: %w", err)
	}
	defer pool.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rcv := newReceiver()
	var queries atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	ready := make(chan struct{})
	query := `SELECT id, owner_id, name, title, status, priority FROM ` + table + ` WHERE owner_id = $1`
	for owner := range k {
		wg.Go(func() {
			seen := map[int64]bool{}
			first := true
			// Spread the pollers over the interval.
			select {
			case <-time.After(pollInterval * time.Duration(owner) / time.Duration(k)):
			case <-ctx.Done():
				return
			}
			t := time.NewTicker(pollInterval)
			defer t.Stop()
			for {
				ids, err := pollOnce(ctx, pool, query, owner)
				if err != nil {
					if ctx.Err() == nil && owner == 0 {
						rcv.errc <- err
					}
					return
				}
				queries.Add(1)
				at := time.Now()
				if owner == 0 {
					for _, id := range ids {
						if !seen[id] {
							seen[id] = true
							if !first {
								select {
								case rcv.arrivals <- arrival{id: id, at: at}:
								case <-ctx.Done():
									return
								}
							}
						}
					}
					if first {
						first = false
						close(ready)
					}
				}
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	select {
	case <-ready:
	case err := <-rcv.errc:
		return pollResult{}, err
	case <-ctx.Done():
		return pollResult{}, ctx.Err()
	}
	time.Sleep(2 * pollInterval) // every poller running
	q0 := queries.Load()
	mark := env.markCPU()
	lat, err := measure(ctx, rcv, commits, func() (int64, error) { return insertRow(ctx, env, table, 0) })
	if err != nil {
		return pollResult{}, err
	}
	ph := env.phaseSince("", mark)
	return pollResult{lat: lat, queries: queries.Load() - q0, elapsed: ph.Wall, pgCPU: ph.PGCPU}, nil
}

func pollOnce(ctx context.Context, pool *pgxpool.Pool, query string, owner int) ([]int64, error) {
	rows, err := pool.Query(ctx, query, owner)
	if err != nil {
		return nil, fmt.Errorf("poll owner_id = %d: %w", owner, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		if id, ok := vals[0].(int64); ok {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

func pollRow(n, commits int, volt latencies, voltPG, voltWall time.Duration, p pollResult) Row {
	vc, pc := pgCores(voltPG, voltWall), pgCores(p.pgCPU, p.elapsed)
	return Row{
		Scenario: "S4 vs naive poller",
		Params: fmt.Sprintf("N=%s: volt's N shapes (the S4 row) vs N goroutines re-running `SELECT … WHERE owner_id = k` every %s over %d pgx connections; %d commits",
			count(n), pollInterval, pollConns, commits),
		Volt: fmt.Sprintf("%s; Postgres CPU %.2f cores during the commits", volt.fromCommit.full(), vc),
		Baseline: fmt.Sprintf("poller: %s; %.0f queries/s (%d wanted); Postgres CPU %.2f cores",
			p.lat.fromCommit.full(), p.qps(), int(float64(n)/pollInterval.Seconds()), pc),
		Ratio: ratio(msf(volt.fromCommit.p50), msf(p.lat.fromCommit.p50)), RatioOf: "p50",
		MoreRatios: []ExtraRatio{
			{Of: "p99", Value: ratio(msf(volt.fromCommit.p99), msf(p.lat.fromCommit.p99))},
			{Of: "Postgres CPU", Value: ratio(vc, pc)},
		},
		Target:    pollTarget,
		VoltValue: msf(volt.fromCommit.p50), BaselineValue: msf(p.lat.fromCommit.p50),
	}
}

// notifyFanout is the LISTEN/NOTIFY fan-out: c Postgres connections LISTEN
// on a channel that an AFTER INSERT trigger pg_notify's; per round one
// row is inserted and each listener's receipt is timed from sending the
// INSERT, as S5 times volt's clients.
func notifyFanout(ctx context.Context, env *Env, c, rounds int) (dist, error) {
	conns := make([]*pgx.Conn, c)
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				conn.Close(context.Background())
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for range min(c, 16) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < c; i = int(next.Add(1) - 1) {
				conn, err := pgx.Connect(ctx, env.dbURL)
				if err == nil {
					_, err = conn.Exec(ctx, "LISTEN s5_notify")
				}
				if err != nil {
					mu.Lock()
					firstErr = fmt.Errorf("listener %d: %w", i, err)
					mu.Unlock()
					if conn != nil {
						conn.Close(context.Background())
					}
					return
				}
				conns[i] = conn
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return dist{}, firstErr
	}
	var all []time.Duration
	for range rounds {
		rctx, cancel := context.WithTimeout(ctx, s5WaitTimeout)
		got := make(chan time.Time, c)
		errs := make(chan error, c)
		var wg sync.WaitGroup
		for _, conn := range conns {
			wg.Go(func() {
				if _, err := conn.WaitForNotification(rctx); err != nil {
					errs <- err
					return
				}
				got <- time.Now()
			})
		}
		time.Sleep(50*time.Millisecond + time.Duration(c)*20*time.Microsecond) // every listener waiting
		sent := time.Now()
		_, err := insertRow(rctx, env, "s5_notify", 0)
		wg.Wait()
		cancel()
		if err != nil {
			return dist{}, err
		}
		close(got)
		select {
		case err := <-errs:
			return dist{}, fmt.Errorf("listener: %w", err)
		default:
		}
		for at := range got {
			all = append(all, at.Sub(sent))
		}
	}
	return summarize(all), nil
}

func createNotifyTable(ctx context.Context, env *Env) error {
	for _, s := range []string{
		`CREATE TABLE s5_notify (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`,
		`CREATE FUNCTION s5_notify_fn() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN PERFORM pg_notify('s5_notify', NEW.id::text); RETURN NEW; END $$`,
		`CREATE TRIGGER s5_notify_trg AFTER INSERT ON s5_notify FOR EACH ROW EXECUTE FUNCTION s5_notify_fn()`,
	} {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create s5_notify: %w", err)
		}
	}
	return nil
}

func notifyRow(c int, volt dist, notify dist, err error) Row {
	r := Row{
		Scenario: "S5 fan-out vs LISTEN/NOTIFY",
		Params: fmt.Sprintf("C=%s: volt's C long polls (the S5 row) vs C Postgres connections LISTENing to an AFTER INSERT trigger's pg_notify; %d inserts, timed from sending the INSERT",
			count(c), s5Rounds),
		Volt:   volt.full(),
		Target: notifyTarget, VoltValue: msf(volt.p50),
	}
	if err != nil {
		r.Baseline = "–"
		r.Volt += "; baseline " + err.Error()
		if !strings.HasPrefix(err.Error(), "not run") {
			r.Err = err.Error()
		}
		return r
	}
	r.Baseline = "NOTIFY: " + notify.full()
	r.Ratio, r.RatioOf = ratio(msf(volt.p50), msf(notify.p50)), "p50"
	r.MoreRatios = []ExtraRatio{{Of: "max", Value: ratio(msf(volt.max), msf(notify.max))}}
	r.BaselineValue = msf(notify.p50)
	return r
}
