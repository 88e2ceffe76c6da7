package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	s4Table          = "s4_items"
	s4NotifyTable    = "s4_notify"
	s4Target         = "p50 ≤ 5 ms, p99 ≤ 15 ms, flat to 100k shapes"
	s4FloorTarget    = "match or beat LISTEN/NOTIFY"
	s4CreateTarget   = "≥ 1 000 new shapes/s (S3); ≤ 2 KB RAM per idle shape (S11)"
	s4CreateWorkers  = 8
	s4AwaitTimeout   = 10 * time.Second
	s4BetweenCommits = 10 * time.Millisecond
)

// runS4 measures commit-to-client latency on one shape (owner_id = 0) while
// N unrelated shapes (owner_id = k) exist. Baselines: the same with N = 1,
// and LISTEN/NOTIFY from a trigger (commit → notification) as the floor.
func runS4(ctx context.Context, env *Env, shapeCounts []int, commits int) ([]Row, error) {
	maxN := 1
	for _, n := range shapeCounts {
		maxN = max(maxN, n)
	}
	if err := createS4Tables(ctx, env, maxN); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rcv, one, floor, err := s4Baselines(ctx, env, commits)
	if err != nil {
		return nil, err
	}
	rows := []Row{s4FloorRow(commits, one, floor)}
	created := 1
	for _, n := range shapeCounts {
		r, ok, err := s4Step(ctx, env, rcv, created, n, commits, one)
		if err != nil {
			return nil, fmt.Errorf("N = %d: %w", n, err)
		}
		rows, created = append(rows, r...), max(created, n)
		if !ok {
			break
		}
	}
	return rows, nil
}

// s4Baselines measures LISTEN/NOTIFY, then starts the client of
// owner_id = 0 and measures it with one unrelated shape (owner_id = 1).
func s4Baselines(ctx context.Context, env *Env, commits int) (rcv *receiver, one, floor latencies, err error) {
	if floor, err = notifyLatency(ctx, env, commits); err != nil {
		return nil, one, floor, fmt.Errorf("LISTEN/NOTIFY baseline: %w", err)
	}
	if rcv, err = followShape(ctx, env, newShapeReq(env.URL, s4Table, "owner_id = 0")); err != nil {
		return nil, one, floor, err
	}
	if _, _, err = createShapes(ctx, env, 1, 1); err != nil {
		return nil, one, floor, err
	}
	if one, err = shapeLatency(ctx, env, rcv, commits); err != nil {
		return nil, one, floor, fmt.Errorf("N = 1: %w", err)
	}
	env.progress("S4: N=1 %s; LISTEN/NOTIFY %s", one, floor)
	return rcv, one, floor, nil
}

// s4Step grows the unrelated shapes from have to n and measures again.
// ok=false: creating the shapes failed, which the returned row reports;
// larger N are then skipped.
func s4Step(ctx context.Context, env *Env, rcv *receiver, have, n, commits int, one latencies) (rows []Row, ok bool, err error) {
	before, err := env.usage()
	if err != nil {
		return nil, false, err
	}
	took, made, createErr := createShapes(ctx, env, have+1, n)
	after, err := env.usage()
	if err != nil {
		return nil, false, err
	}
	if createErr != nil {
		if ctx.Err() != nil {
			return nil, false, createErr
		}
		env.progress("S4: creating shapes failed: %v\nvolt serve log (tail):\n%s", createErr, env.logTail())
		return []Row{s4CreateFailedRow(made, n-have, n, createErr, after)}, false, nil
	}
	mark := env.markCPU()
	lat, err := shapeLatency(ctx, env, rcv, commits)
	if err != nil {
		return nil, false, err
	}
	voltPhase := env.phaseSince("", mark)
	env.progress("S4: N=%d %s (created %d shapes in %s)", n, lat, n-have, took)
	poll, err := naivePoller(ctx, env, s4Table, n, commits)
	if err != nil {
		return nil, false, fmt.Errorf("naive poller: %w", err)
	}
	env.progress("S4: naive poller at %d shapes: %s, %.0f queries/s", n, poll.lat.fromCommit.full(), poll.qps())
	pl := env.plot("s4", "S4: commit to client latency vs unrelated shapes", "shapes N", "latency ms")
	pl.add("volt p50", float64(n), msf(lat.fromCommit.p50))
	pl.add("volt p99", float64(n), msf(lat.fromCommit.p99))
	pl.add("volt N=1 p50 (baseline)", float64(n), msf(one.fromCommit.p50))
	pl.add("100 ms poller p50 (baseline)", float64(n), msf(poll.lat.fromCommit.p50))
	pl.hline("target p50 5 ms", 5)
	pl.hline("target p99 15 ms", 15)
	rows = []Row{{
		Scenario: "S4 commit→client, N unrelated shapes",
		Params:   fmt.Sprintf("N=%s `owner_id = k`, %d single-row commits", count(n), commits),
		Volt:     lat.fromCommit.full(), Baseline: "N=1: " + one.fromCommit.String(),
		Ratio: ratio(msf(lat.fromCommit.p50), msf(one.fromCommit.p50)), RatioOf: "p50",
		Target:    s4Target,
		VoltValue: msf(lat.fromCommit.p50), BaselineValue: msf(one.fromCommit.p50),
	}}
	rows = append(rows, pollRow(n, commits, lat, voltPhase.PGCPU, voltPhase.Wall, poll))
	if created := n - have; created > 0 {
		rows = append(rows, s4CreateRow(created, n, took, before, after))
	}
	return rows, true, nil
}

// s4FloorRow compares with LISTEN/NOTIFY from the INSERT being sent: the
// notification usually arrives before COMMIT returns, so from COMMIT the
// floor would read 0.
func s4FloorRow(commits int, one, floor latencies) Row {
	return Row{
		Scenario: "S4 INSERT sent→client, floor",
		Params:   fmt.Sprintf("N=1; trigger pg_notify, LISTEN on a pgx connection; %d commits; timed from sending the INSERT", commits),
		Volt:     "N=1: " + one.fromSend.full(), Baseline: "NOTIFY: " + floor.fromSend.full(),
		Ratio: ratio(msf(one.fromSend.p50), msf(floor.fromSend.p50)), RatioOf: "p50",
		Target:    s4FloorTarget,
		VoltValue: msf(one.fromSend.p50), BaselineValue: msf(floor.fromSend.p50),
	}
}

func s4CreateRow(created, total int, took time.Duration, before, after serverUsage) Row {
	perSec := float64(created) / took.Seconds()
	return Row{
		Scenario: "S4 setup: shape creation",
		Params:   s4CreateParams(created, total),
		Volt: fmt.Sprintf("%s (%s); RSS %+.1f KB/shape; %+.1f open fds/shape", rate(perSec, "shapes"), ms(took),
			float64(after.rss-before.rss)/1024/float64(created), float64(after.fds-before.fds)/float64(created)),
		Baseline: "–", Target: s4CreateTarget, VoltValue: perSec,
	}
}

func s4CreateFailedRow(made, wanted, total int, err error, after serverUsage) Row {
	return Row{
		Scenario: "S4 setup: shape creation",
		Params:   s4CreateParams(wanted, total),
		Volt:     fmt.Sprintf("FAILED after %d of %d new shapes (server has %d open fds): %v", made, wanted, after.fds, err),
		Baseline: "–", Target: s4CreateTarget,
		Err: err.Error(),
	}
}

func s4CreateParams(created, total int) string {
	return fmt.Sprintf("%d new shapes (to %s), %d concurrent offset=-1 requests, 1-row snapshots", created, count(total), s4CreateWorkers)
}

// createS4Tables makes s4_items (one row per owner 0..maxN, indexed on
// owner_id) and s4_notify with its pg_notify trigger.
func createS4Tables(ctx context.Context, env *Env, maxN int) error {
	if err := createOwnerTable(ctx, env, s4Table, maxN); err != nil {
		return err
	}
	stmts := []string{
		`CREATE TABLE s4_notify (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`,
		`CREATE FUNCTION s4_notify_fn() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN PERFORM pg_notify('s4_notify', NEW.id::text); RETURN NEW; END $$`,
		`CREATE TRIGGER s4_notify_trg AFTER INSERT ON s4_notify FOR EACH ROW EXECUTE FUNCTION s4_notify_fn()`,
	}
	for _, s := range stmts {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create S4 tables: %w", err)
		}
	}
	return nil
}

// createOwnerTable makes table with one row per owner_id 0..n, indexed on
// owner_id, in the schema insertRow writes.
func createOwnerTable(ctx context.Context, env *Env, table string, n int) error {
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE %s (id bigserial PRIMARY KEY, owner_id int NOT NULL, name text NOT NULL,
			title text NOT NULL, status text NOT NULL, priority int NOT NULL)`, table),
		fmt.Sprintf(`CREATE INDEX ON %s (owner_id)`, table),
		fmt.Sprintf(`INSERT INTO %s (owner_id, name, title, status, priority)
			SELECT g, 'name ' || g, 'issue title number ' || g, 'open', g %% 5 FROM generate_series(0, %d) g`, table, n),
		fmt.Sprintf(`VACUUM (ANALYZE) %s`, table),
	}
	for _, s := range stmts {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create %s: %w", table, err)
		}
	}
	return nil
}

// createShapes creates the shapes owner_id = from..to with concurrent
// offset=-1 requests. It returns how long that took and how many it made;
// the first failure stops every worker.
func createShapes(ctx context.Context, env *Env, from, to int) (time.Duration, int, error) {
	return createShapesOf(ctx, env, s4Table, from, to)
}

// createShapesOf creates the shapes owner_id = from..to of table.
func createShapesOf(ctx context.Context, env *Env, table string, from, to int) (time.Duration, int, error) {
	if from > to {
		return 0, 0, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	client := newClient(s4CreateWorkers)
	defer client.CloseIdleConnections()
	var next, made atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	start := time.Now()
	for range s4CreateWorkers {
		wg.Go(func() {
			if err := createShapesWorker(ctx, env, client, table, &next, &made, to); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return 0, int(made.Load()), err
	}
	return time.Since(start), int(made.Load()), nil
}

func createShapesWorker(ctx context.Context, env *Env, client *http.Client, table string, next, made *atomic.Int64, to int) error {
	var buf bytes.Buffer
	for k := next.Add(1) - 1; k <= int64(to) && ctx.Err() == nil; k = next.Add(1) - 1 {
		q := newShapeReq(env.URL, table, "owner_id = "+strconv.FormatInt(k, 10))
		if _, err := get(ctx, client, q.url(startState(), false), &buf); err != nil {
			return fmt.Errorf("create shape owner_id = %d: %w", k, err)
		}
		made.Add(1)
	}
	return nil
}

// shapeLatency measures commit → client for single-row inserts into the
// followed shape (owner_id = 0).
func shapeLatency(ctx context.Context, env *Env, rcv *receiver, commits int) (latencies, error) {
	return measure(ctx, rcv, commits, func() (int64, error) {
		return insertRow(ctx, env, s4Table, 0)
	})
}

// notifyLatency measures commit → notification through LISTEN/NOTIFY.
func notifyLatency(ctx context.Context, env *Env, commits int) (latencies, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rcv, err := listen(ctx, env, "s4_notify")
	if err != nil {
		return latencies{}, err
	}
	return measure(ctx, rcv, commits, func() (int64, error) {
		return insertRow(ctx, env, s4NotifyTable, 0)
	})
}

// latencies of one measurement: from COMMIT returning (the headline) and
// from the INSERT being sent (includes Postgres' own commit time).
type latencies struct {
	fromCommit, fromSend dist
}

func (l latencies) String() string { return l.fromCommit.String() }

// measure commits one row at a time (autocommit) and times the receiver
// seeing the row. A receipt that races ahead of the COMMIT acknowledgement
// counts as 0 from COMMIT.
func measure(ctx context.Context, rcv *receiver, commits int, insert func() (int64, error)) (latencies, error) {
	fromCommit := make([]time.Duration, 0, commits)
	fromSend := make([]time.Duration, 0, commits)
	for range commits {
		time.Sleep(s4BetweenCommits) // the client's next long poll parks
		sent := time.Now()
		id, err := insert()
		if err != nil {
			return latencies{}, err
		}
		committed := time.Now()
		at, err := rcv.await(ctx, id, s4AwaitTimeout)
		if err != nil {
			return latencies{}, err
		}
		fromCommit = append(fromCommit, max(0, at.Sub(committed)))
		fromSend = append(fromSend, at.Sub(sent))
	}
	return latencies{fromCommit: summarize(fromCommit), fromSend: summarize(fromSend)}, nil
}

// insertRow inserts one row for owner and returns its id once committed.
func insertRow(ctx context.Context, env *Env, table string, owner int) (int64, error) {
	var id int64
	err := env.Pool.QueryRow(ctx, `INSERT INTO `+table+` (owner_id, name, title, status, priority)
		VALUES ($1, 'bench', 'a row written by volt bench', 'open', 1) RETURNING id`, owner).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert into %s: %w", table, err)
	}
	return id, nil
}

// receiver delivers the ids a client sees, with their receive times.
type receiver struct {
	arrivals chan arrival
	errc     chan error
}

func newReceiver() *receiver {
	return &receiver{arrivals: make(chan arrival, 1024), errc: make(chan error, 1)}
}

// await returns when id arrives; earlier ids are skipped.
func (r *receiver) await(ctx context.Context, id int64, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case a := <-r.arrivals:
			if a.id == id {
				return a.at, nil
			}
		case err := <-r.errc:
			return time.Time{}, fmt.Errorf("receiver stopped: %w", err)
		case <-t.C:
			return time.Time{}, fmt.Errorf("row %d not received within %s", id, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// followShape syncs q and then long-polls it until ctx ends.
func followShape(ctx context.Context, env *Env, q shapeReq) (*receiver, error) {
	client := newClient(2)
	res, err := syncShape(ctx, client, q)
	if err != nil {
		return nil, fmt.Errorf("sync %v: %w", q.params, err)
	}
	rcv := newReceiver()
	go func() {
		err := followLive(ctx, client, q, res.state, rcv.arrivals)
		if err == nil {
			err = errors.New("follower stopped")
		}
		rcv.errc <- err
		client.CloseIdleConnections()
	}()
	return rcv, nil
}

// listen receives the notifications of channel on a dedicated connection.
func listen(ctx context.Context, env *Env, channel string) (*receiver, error) {
	conn, err := pgx.Connect(ctx, env.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect listener: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("listen: %w", err)
	}
	rcv := newReceiver()
	go func() {
		defer conn.Close(context.Background())
		rcv.errc <- listenLoop(ctx, conn, rcv.arrivals)
	}()
	return rcv, nil
}

func listenLoop(ctx context.Context, conn *pgx.Conn, out chan<- arrival) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		at := time.Now()
		id, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			return fmt.Errorf("notification payload %q: %w", n.Payload, err)
		}
		select {
		case out <- arrival{id: id, at: at}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
