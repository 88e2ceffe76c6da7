package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgembed"
)

const (
	s8Table   = "s8_items"
	s8Slot    = "bench_recvlogical"
	s8Pub     = "bench_recvlogical_pub"
	s8Writers = 8
	s8Target  = "keep up with PG's max commit rate; p99 commit→log ≤ 50 ms, commit→client ≤ 100 ms; writers' TPS cost ≤ 15 %"
	// s8ProbesPerSec is about how many commits per second go to the followed
	// shape (owner_id = 0); the rest spread over the other shapes.
	s8ProbesPerSec = 50
	s8DrainTimeout = 30 * time.Second
	// s8FDsPerShape is what volt holds open per idle shape: nothing since
	// shape logs are opened on demand (volt serve -max-open-logs bounds
	// the open ones), so no size is refused for want of file descriptors.
	s8FDsPerShape = 0
)

// s8Phase is one load level.
type s8Phase struct {
	rate       int // target tx/s; 0 = as fast as the writers go
	writes     int
	elapsed    time.Duration
	lat        dist // probe commits: COMMIT returned → the follower has the row
	probes     int
	drain      time.Duration // writers stopped → last probe received
	slotLagMax int64         // pg_current_wal_lsn − confirmed_flush_lsn, sampled
	sentLagMax int64         // pg_current_wal_lsn − sent_lsn of volt's walsender, sampled
	slotLagEnd int64         // confirmed_flush lag when the writers stop
	voltCPU    time.Duration
	pgCPU      time.Duration
	// behind says volt had not delivered every probe s8DrainTimeout after
	// the writers stopped (the latencies of those count as at least that).
	behind  string
	commits map[int64]time.Time
}

func (p s8Phase) tps() float64 { return float64(p.writes) / p.elapsed.Seconds() }

func (p s8Phase) rateText() string {
	if p.rate == 0 {
		return "max"
	}
	return count(p.rate) + " tx/s"
}

// runS8 measures replication keep-up: W writers commit single-row inserts
// at rising rates while volt holds N shapes (owner_id = k); a follower of
// owner_id = 0 times the probe commits. Baselines of the same run: the
// writers' TPS with volt stopped, and pg_recvlogical → /dev/null consuming
// the WAL the whole scenario wrote (the decoding limit).
func runS8(ctx context.Context, env *Env, shapes, rates []int, d time.Duration) ([]Row, error) {
	feasible := 0
	for _, n := range shapes {
		if s8Feasible(n) {
			feasible = max(feasible, n)
		}
	}
	if err := createS8Table(ctx, env, feasible); err != nil {
		return nil, err
	}
	writers, err := s8Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range writers {
			c.Close(context.Background())
		}
	}()
	var total atomic.Int64
	// Without volt, before and after: stop it (dropping its slot), measure,
	// start a fresh one. The shared machine's load drifts, so the baseline
	// is the better of the two.
	noVolt := func(when string) (s8Phase, error) {
		if err := env.dropServer(ctx); err != nil {
			return s8Phase{}, err
		}
		none, err := s8Run(ctx, env, writers, &total, 0, d, max(feasible, 1), nil, "")
		if err != nil {
			return none, fmt.Errorf("without volt (%s): %w", when, err)
		}
		env.progress("S8: without volt (%s) %.0f tx/s", when, none.tps())
		return none, env.startServer(ctx)
	}
	before, err := noVolt("before")
	if err != nil {
		return nil, err
	}
	type measured struct {
		n      int
		phases []s8Phase
	}
	var runs []measured
	for _, n := range shapes {
		if !s8Feasible(n) {
			runs = append(runs, measured{n: n})
			continue
		}
		phases, err := s8Shapes(ctx, env, writers, &total, n, rates, d)
		if err != nil {
			return nil, fmt.Errorf("%s shapes: %w", count(n), err)
		}
		runs = append(runs, measured{n, phases})
	}
	after, err := noVolt("after")
	if err != nil {
		return nil, err
	}
	none := s8Baseline{before: before.tps(), after: after.tps()}
	var rows []Row
	var voltMax s8Phase
	pl := env.plot("s8", "S8: commit to client latency vs commit rate (single-row tx)", "committed tx/s", "ms from COMMIT")
	for _, m := range runs {
		if m.phases == nil {
			rows = append(rows, s8FailedRow(m.n, d, "every rate", fmt.Sprintf("not run: %s shapes need ≈ %d open files in volt serve (%d per shape today), the limit is %d",
				count(m.n), m.n*s8FDsPerShape, s8FDsPerShape, fileLimit())))
			continue
		}
		for _, p := range m.phases {
			if p.writes == 0 {
				rows = append(rows, s8FailedRow(m.n, d, "target "+p.rateText(), p.behind))
				continue
			}
			rows = append(rows, s8Row(m.n, d, p, none))
			series := fmt.Sprintf("volt %s shapes", count(m.n))
			pl.add(series+" p50", p.tps(), msf(p.lat.p50))
			pl.add(series+" p99", p.tps(), msf(p.lat.p99))
			pl.hline("target p99 commit→log 50 ms", 50)
			pl.hline("target commit→client 100 ms", 100)
			pl.vline("writers' max tx/s without volt (baseline)", none.max())
			if p.tps() > voltMax.tps() || voltMax.writes == 0 {
				voltMax = p // the fastest phase
			}
		}
	}
	recv, err := s8RecvLogical(ctx, env, total.Load())
	if err != nil {
		rows = append(rows, Row{Scenario: "S8 decoding limit", Params: "pg_recvlogical → /dev/null", Volt: "–",
			Baseline: "FAILED: " + err.Error(), Target: s8Target, Err: err.Error()})
		return rows, nil
	}
	env.progress("S8: pg_recvlogical %s", recv)
	if voltMax.writes > 0 {
		rows = append(rows, s8RecvRow(voltMax, recv))
	}
	return rows, nil
}

// s8Feasible says whether volt can hold n shapes plus the load's sockets.
func s8Feasible(n int) bool { return uint64(n*s8FDsPerShape+1000) <= fileLimit() }

// s8Shapes creates n shapes, follows owner_id = 0 and runs every rate.
func s8Shapes(ctx context.Context, env *Env, writers []*pgx.Conn, total *atomic.Int64, n int, rates []int, d time.Duration) ([]s8Phase, error) {
	took, _, err := createShapesOf(ctx, env, s8Table, 1, n-1)
	if err != nil {
		return nil, fmt.Errorf("create shapes: %w", err)
	}
	env.progress("S8: created %d shapes in %s", n, took.Round(time.Millisecond))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rcv, err := followShape(ctx, env, newShapeReq(env.URL, s8Table, "owner_id = 0"))
	if err != nil {
		return nil, err
	}
	got := collectArrivals(ctx, rcv)
	var phases []s8Phase
	for _, r := range rates {
		p, err := s8Run(ctx, env, writers, total, r, d, n, got, env.slotName())
		if err != nil {
			return nil, fmt.Errorf("rate %d: %w", r, err)
		}
		env.progress("S8: N=%d rate %s: %.0f tx/s, commit→client %s, drain %s, slot lag max %d B (sent lag max %d B)",
			n, p.rateText(), p.tps(), p.lat.full(), ms(p.drain), p.slotLagMax, p.sentLagMax)
		phases = append(phases, p)
		if p.behind != "" {
			// Let volt catch up before the next rate, or stop here.
			if _, err := got.waitAll(ctx, p.commits, 3*s8DrainTimeout); err != nil {
				env.progress("S8: volt did not catch up: %v", err)
				for _, r := range rates[len(phases):] {
					phases = append(phases, s8Phase{rate: r, behind: "not run: volt had not caught up with the previous rate " +
						fmt.Sprint(3*s8DrainTimeout) + " later (" + err.Error() + ")"})
				}
				return phases, nil
			}
		}
	}
	return phases, nil
}

// arrivals records when the follower received each id.
type arrivals struct {
	mu   sync.Mutex
	at   map[int64]time.Time
	err  error
	wake chan struct{} // signalled on every arrival
}

func collectArrivals(ctx context.Context, rcv *receiver) *arrivals {
	a := &arrivals{at: map[int64]time.Time{}, wake: make(chan struct{}, 1)}
	go func() {
		for {
			select {
			case x := <-rcv.arrivals:
				a.mu.Lock()
				a.at[x.id] = x.at
				a.mu.Unlock()
			case err := <-rcv.errc:
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			case <-ctx.Done():
				return
			}
			select {
			case a.wake <- struct{}{}:
			default:
			}
		}
	}()
	return a
}

// errBehind is waitAll's timeout: volt has not delivered every probe yet.
var errBehind = errors.New("probes not received")

// waitAll waits until every id has arrived; it returns when the last did.
func (a *arrivals) waitAll(ctx context.Context, ids map[int64]time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		var last time.Time
		missing := 0
		for id := range ids {
			t, ok := a.at[id]
			if !ok {
				missing++
			} else if t.After(last) {
				last = t
			}
		}
		err := a.err
		a.mu.Unlock()
		if missing == 0 {
			return last, nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("follower stopped with %d probes missing: %w", missing, err)
		}
		select {
		case <-a.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return time.Time{}, fmt.Errorf("%w: %d of %d probe rows not received within %s of the writers stopping", errBehind, missing, len(ids), timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (a *arrivals) get(id int64) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[id]
	return t, ok
}

// s8Run drives the writers at rate (0: unpaced) for d. With got set, every
// probe-th commit goes to owner_id = 0 and is timed to the follower; the
// rest go to owners 1..n-1. With slot set, the slot's lag is sampled.
func s8Run(ctx context.Context, env *Env, writers []*pgx.Conn, total *atomic.Int64, rate int, d time.Duration, n int,
	got *arrivals, slot string) (s8Phase, error) {
	ph := s8Phase{rate: rate}
	probeEvery := 200
	if rate > 0 {
		probeEvery = max(1, rate/s8ProbesPerSec)
	}
	var mu sync.Mutex
	commits := map[int64]time.Time{}
	var seq atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopSampling := make(chan struct{})
	var sampled sync.WaitGroup
	if slot != "" {
		sampled.Go(func() { s8SampleLag(ctx, env, slot, &ph, stopSampling) })
	}
	mark := env.markCPU()
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(writers)) / float64(rate))
	}
	for i, conn := range writers {
		wg.Go(func() {
			next := start.Add(interval * time.Duration(i) / time.Duration(len(writers)))
			for ctx.Err() == nil {
				if interval > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
					next = next.Add(interval)
				}
				if time.Now().After(deadline) {
					return
				}
				k := seq.Add(1)
				probe := got != nil && k%int64(probeEvery) == 0
				owner := 1 + int(k)%max(1, n-1)
				if probe {
					owner = 0
				}
				var id int64
				if err := conn.QueryRow(ctx, `INSERT INTO `+s8Table+` (owner_id, name, title, status, priority)
					VALUES ($1, 'bench', 'a row written by volt bench', 'open', 1) RETURNING id`, owner).Scan(&id); err != nil {
					cancel(fmt.Errorf("insert: %w", err))
					return
				}
				if probe {
					now := time.Now()
					mu.Lock()
					commits[id] = now
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	stopped := time.Now()
	ph.elapsed = stopped.Sub(start)
	ph.writes = int(seq.Load())
	if err := context.Cause(ctx); err != nil {
		close(stopSampling)
		sampled.Wait()
		return ph, err
	}
	total.Add(int64(ph.writes))
	if slot != "" {
		if lag, _, err := slotLag(ctx, env, slot); err == nil {
			ph.slotLagEnd = lag
		}
	}
	if got != nil {
		last, err := got.waitAll(ctx, commits, s8DrainTimeout)
		switch {
		case errors.Is(err, errBehind):
			ph.behind = err.Error()
			ph.drain = time.Since(stopped)
		case err != nil:
			close(stopSampling)
			sampled.Wait()
			return ph, err
		default:
			ph.drain = max(0, last.Sub(stopped))
		}
		lat := make([]time.Duration, 0, len(commits))
		for id, c := range commits {
			if at, ok := got.get(id); ok {
				lat = append(lat, max(0, at.Sub(c)))
			} else {
				lat = append(lat, ph.drain+stopped.Sub(c)) // not yet: at least this late
			}
		}
		ph.lat, ph.probes = summarize(lat), len(commits)
		ph.commits = commits
	}
	close(stopSampling)
	sampled.Wait()
	p := env.phaseSince("", mark)
	ph.voltCPU, ph.pgCPU = p.ServerCPU, p.PGCPU
	return ph, nil
}

// s8SampleLag samples the slot's lag every 100 ms until stop.
func s8SampleLag(ctx context.Context, env *Env, slot string, ph *s8Phase, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if lag, sent, err := slotLag(ctx, env, slot); err == nil {
			ph.slotLagMax, ph.sentLagMax = max(ph.slotLagMax, lag), max(ph.sentLagMax, sent)
		}
	}
}

// slotLag is how far the slot's confirmed flush position and its
// walsender's sent position are behind the current WAL position, in bytes.
func slotLag(ctx context.Context, env *Env, slot string) (confirmed, sent int64, err error) {
	var s *int64
	err = env.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
		(SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), r.sent_lsn)::bigint FROM pg_stat_replication r WHERE r.pid = s.active_pid)
		FROM pg_replication_slots s WHERE s.slot_name = $1`, slot).Scan(&confirmed, &s)
	if s != nil {
		sent = *s
	}
	return confirmed, sent, err
}

func s8Connect(ctx context.Context, env *Env) ([]*pgx.Conn, error) {
	var conns []*pgx.Conn
	for range s8Writers {
		c, err := pgx.Connect(ctx, env.dbURL)
		if err != nil {
			for _, c := range conns {
				c.Close(context.Background())
			}
			return nil, fmt.Errorf("connect writer: %w", err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// createS8Table makes s8_items with one row per owner 0..n, its
// publication for pg_recvlogical, and the baseline's slot, so that the slot
// sees every insert of the scenario.
func createS8Table(ctx context.Context, env *Env, n int) error {
	if err := createOwnerTable(ctx, env, s8Table, n); err != nil {
		return err
	}
	stmts := []string{
		`CREATE PUBLICATION ` + s8Pub + ` FOR TABLE s8_items`,
		`SELECT pg_create_logical_replication_slot('` + s8Slot + `', 'pgoutput')`,
	}
	for _, s := range stmts {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create S8 table: %w", err)
		}
	}
	return nil
}

// recvResult is pg_recvlogical's pass over the scenario's WAL.
type recvResult struct {
	walBytes int64
	tx       int64 // single-row insert transactions in that WAL
	took     time.Duration
}

func (r recvResult) txPerSec() float64 { return float64(r.tx) / r.took.Seconds() }

func (r recvResult) String() string {
	return fmt.Sprintf("%d tx (%.1f MB of WAL) in %s: %s, %s", r.tx, float64(r.walBytes)/1e6, ms(r.took),
		rate(r.txPerSec(), "tx"), mbps(r.walBytes, r.took))
}

// s8RecvLogical runs pg_recvlogical (pgoutput, proto 1) on the slot made
// before the first insert, to /dev/null, until it reaches the current WAL
// position, and times it: how fast Postgres decodes and ships what S8 wrote.
func s8RecvLogical(ctx context.Context, env *Env, tx int64) (recvResult, error) {
	defer func() { _ = env.dropSlot(context.WithoutCancel(ctx), s8Slot) }()
	recvlogical, err := findRecvLogical()
	if err != nil {
		return recvResult{}, err
	}
	var end string
	var wal int64
	if err := env.Pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, s8Slot).Scan(&end, &wal); err != nil {
		return recvResult{}, fmt.Errorf("read WAL position: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, recvlogical, "-d", env.dbURL, "--slot", s8Slot, "--start",
		"-o", "proto_version=1", "-o", "publication_names="+s8Pub, "-f", "/dev/null", "-F", "0", "--no-loop", "--endpos", end)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) || ctx.Err() != nil {
			return recvResult{}, fmt.Errorf("pg_recvlogical: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return recvResult{}, fmt.Errorf("run pg_recvlogical: %w", err)
	}
	return recvResult{walBytes: wal, tx: tx, took: took}, nil
}

// findRecvLogical finds pg_recvlogical beside the server binaries that
// pgembed uses (following a symlinked initdb to its real directory), else
// on PATH.
func findRecvLogical() (string, error) {
	if dir, err := pgembed.FindBinDir(); err == nil {
		dirs := []string{dir}
		if real, err := filepath.EvalSymlinks(filepath.Join(dir, "initdb")); err == nil {
			dirs = append([]string{filepath.Dir(real)}, dirs...)
		}
		for _, d := range dirs {
			p := filepath.Join(d, "pg_recvlogical")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	p, err := exec.LookPath("pg_recvlogical")
	if err != nil {
		return "", fmt.Errorf("pg_recvlogical not found beside the Postgres binaries nor on PATH: %w", err)
	}
	return p, nil
}

func s8Params(n int, rate string, d time.Duration) string {
	return fmt.Sprintf("%s shapes `owner_id = k`; %s; %d writers, single-row INSERT commits for %s; ≈ %d/s probe the followed shape `owner_id = 0`",
		count(n), rate, s8Writers, d, s8ProbesPerSec)
}

// s8Baseline is the writers' unpaced rate with volt stopped, measured
// before and after the phases with volt.
type s8Baseline struct{ before, after float64 }

func (b s8Baseline) max() float64 { return max(b.before, b.after) }

func s8Row(n int, d time.Duration, p s8Phase, none s8Baseline) Row {
	drained := "drained " + ms(p.drain) + " after the writers stopped"
	if p.behind != "" {
		drained = "FELL BEHIND: " + p.behind
	}
	volt := fmt.Sprintf("%s committed; commit→client %s (%d probes); %s; slot lag max %s confirmed, %s sent (at stop %s); volt CPU %.0f µs/commit, Postgres CPU %.0f µs/commit",
		rate(p.tps(), "tx"), p.lat.full(), p.probes, drained, kb(p.slotLagMax), kb(p.sentLagMax), kb(p.slotLagEnd),
		float64(p.voltCPU.Microseconds())/float64(max(1, p.writes)), float64(p.pgCPU.Microseconds())/float64(max(1, p.writes)))
	return Row{
		Scenario: "S8 replication keep-up",
		Params:   s8Params(n, "target "+p.rateText(), d),
		Volt:     volt,
		Baseline: fmt.Sprintf("writers without volt (as fast as they go): %s before, %s after the phases with volt",
			rate(none.before, "tx"), rate(none.after, "tx")),
		Ratio: ratio(p.tps(), none.max()), RatioOf: "tx/s ÷ the better without volt",
		Target:    s8Target,
		VoltValue: msf(p.lat.p99), BaselineValue: none.max(),
	}
}

func s8FailedRow(n int, d time.Duration, rates, reason string) Row {
	return Row{
		Scenario: "S8 replication keep-up", Params: s8Params(n, rates, d),
		Volt: "FAILED: " + reason, Baseline: "–", Target: s8Target, Err: reason,
	}
}

// s8RecvRow compares how fast volt got through its fastest phase (its
// commits over the phase plus the drain) with pg_recvlogical's decoding.
func s8RecvRow(v s8Phase, recv recvResult) Row {
	voltRate := float64(v.writes) / (v.elapsed + v.drain).Seconds()
	return Row{
		Scenario: "S8 decoding limit",
		Params:   "volt: commits of the fastest phase ÷ (phase + drain), a lower bound when volt kept up (the writers set it); pg_recvlogical → /dev/null (-F 0, --endpos) over all of S8's WAL, started afterwards",
		Volt:     rate(voltRate, "tx") + " processed",
		Baseline: "pg_recvlogical: " + recv.String(),
		Ratio:    ratio(voltRate, recv.txPerSec()), RatioOf: "tx/s",
		Target:    "slot lag ≤ 5× pg_recvlogical's at PG's max commit rate",
		VoltValue: voltRate, BaselineValue: recv.txPerSec(),
	}
}

func kb(b int64) string {
	if b >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(b)/1024)
}
