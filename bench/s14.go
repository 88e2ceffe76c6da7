package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	s14Items          = "s14_projects_items"
	s14Members        = "s14_members"
	s14Plain          = "s14_plain"
	s14ItemsPer       = 10        // items of every project
	s14Joined         = 3         // projects each user is a member of at the start
	s14ExtraValues    = 20_000    // values the memory users have beyond the others
	s14MemoryUsers    = 500       // at most
	s14MemoryBase     = 1_000_000 // the memory users are s14MemoryBase+1…
	s14ControlBase    = 2_000_000 // and their control group s14ControlBase+1…
	s14Writers        = 8
	s14MemSamples     = 6
	s14AwaitTimeout   = 30 * time.Second
	s14Where          = "project_id IN (SELECT project_id FROM s14_members WHERE user_id = $1)"
	s14LatencyTarget  = "p99 ≤ 50 ms at 10k shapes"
	s14CostTarget     = "the other N−1 shapes not re-queried: ≈ 1 query per change"
	s14MemoryTarget   = "≤ 100 B per value (Electric ≈ 290 B)"
	s14KeepUpTarget   = "keeps up at 1k tx/s"
	s14CreationTarget = "≥ 1 000 new shapes/s (S3)"
)

// runS14 measures membership-style subquery shapes at scale: n shapes
// `project_id IN (SELECT project_id FROM s14_members WHERE user_id = $1)`,
// one per user 1..n, each followed live. It times a user joining a
// project until that project's rows reach the user's client, counts the
// Postgres work and volt CPU per members change, volt's memory per
// dependency value, and keep-up with members inserts at rate tx/s for d.
// The baseline is S4's: commit→client of one row on a plain shape, in the
// same server.
func runS14(ctx context.Context, env *Env, n, inserts, rate int, d, settle time.Duration) ([]Row, error) {
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	// Every shape has a parked live request: room for them all.
	env.extraArgs = []string{"-metrics-port", strconv.Itoa(mport),
		"-max-concurrent-existing", strconv.Itoa(2*(n+s14MemoryUsers) + 1000)}
	defer func() { env.extraArgs = nil }()
	if err := env.RestartServer(ctx); err != nil {
		return nil, err
	}
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	projects := max(20, n/5)
	w, err := newS14World(ctx, env, n, projects)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The S4 baseline: one plain shape, single-row commits.
	if err := createOwnerTable(ctx, env, s14Plain, 1); err != nil {
		return nil, err
	}
	rcv, err := followShape(ctx, env, newShapeReq(env.URL, s14Plain, "owner_id = 0"))
	if err != nil {
		return nil, err
	}
	mark := env.markCPU()
	plain, err := measure(ctx, rcv, inserts, func() (int64, error) { return insertRow(ctx, env, s14Plain, 0) })
	if err != nil {
		return nil, fmt.Errorf("plain shape baseline: %w", err)
	}
	plainCPU := env.phaseSince("", mark).ServerCPU / time.Duration(inserts)
	env.progress("S14: plain shape (S4 N=1) %s, volt CPU %s per commit", plain.fromCommit.full(), plainCPU)

	before, err := s14Memory(ctx, metrics, env)
	if err != nil {
		return nil, err
	}
	took, err := w.follow(ctx, env, 1, n)
	if err != nil {
		return nil, err
	}
	env.progress("S14: %d subquery shapes created and followed in %s", n, took)
	// The last user joining a project: once its rows arrive, every earlier
	// transaction has been routed.
	if _, err := w.join(ctx, env, n); err != nil {
		return nil, err
	}
	created, err := s14Memory(ctx, metrics, env)
	if err != nil {
		return nil, err
	}
	rows := []Row{s14CreateRow(n, took, before, created)}

	lat, cost, err := w.latency(ctx, env, inserts, settle)
	if err != nil {
		return nil, err
	}
	env.progress("S14: members INSERT → moved-in rows %s; %s", lat.full(), cost)
	rows = append(rows, s14LatencyRow(n, inserts, lat, plain), s14CostRow(n, inserts, cost, plainCPU))

	mem, err := w.memory(ctx, env, metrics, before, created)
	if err != nil {
		return nil, err
	}
	env.progress("S14: memory %s", mem)
	rows = append(rows, s14MemoryRow(n, mem))

	ku, err := w.keepUp(ctx, env, rate, d)
	if err != nil {
		return nil, err
	}
	env.progress("S14: keep-up %s", ku)
	rows = append(rows, s14KeepUpRow(n, rate, d, ku, plain))
	return rows, nil
}

// s14World is the two tables and the n users' live clients.
type s14World struct {
	n, projects int
	items       map[int][]int64 // project → its items' ids
	next        []int           // per user: the next project offset to join
	seen        *s14Seen
}

// newS14World creates the tables: projects 1..projects with s14ItemsPer
// items each, and user k (1..n) a member of s14Joined projects; the
// memory users (past s14MemoryBase) and their control group (past
// s14ControlBase) are members of as many projects with items, the memory
// users also of further projects without.
func newS14World(ctx context.Context, env *Env, n, projects int) (*s14World, error) {
	memUsers := min(n, s14MemoryUsers)
	stmts := []string{
		`CREATE TABLE s14_projects_items (id bigserial PRIMARY KEY, project_id int NOT NULL, name text NOT NULL, title text NOT NULL)`,
		`CREATE INDEX ON s14_projects_items (project_id)`,
		fmt.Sprintf(`INSERT INTO s14_projects_items (project_id, name, title)
			SELECT p, 'item ' || i, 'an item of project ' || p FROM generate_series(1, %d) p, generate_series(1, %d) i`, projects, s14ItemsPer),
		`CREATE TABLE s14_members (user_id int NOT NULL, project_id int NOT NULL, PRIMARY KEY (user_id, project_id))`,
		fmt.Sprintf(`INSERT INTO s14_members (user_id, project_id)
			SELECT k, (k * %d + j) %% %d + 1 FROM generate_series(1, %d) k, generate_series(0, %d) j`, s14Joined, projects, n, s14Joined-1),
		// The memory users: the same s14Joined projects with items as
		// the others, and perUser projects without items (past projects).
		fmt.Sprintf(`INSERT INTO s14_members (user_id, project_id)
			SELECT b + u, (u * %d + j) %% %d + 1 FROM generate_series(1, %d) u, generate_series(0, %d) j,
				(VALUES (%d), (%d)) AS base(b)`,
			s14Joined, projects, memUsers, s14Joined-1, s14MemoryBase, s14ControlBase),
		fmt.Sprintf(`INSERT INTO s14_members (user_id, project_id)
			SELECT %d + u, %d + g FROM generate_series(1, %d) u, generate_series(1, %d) g`,
			s14MemoryBase, projects, memUsers, s14ExtraValues/memUsers),
		`VACUUM (ANALYZE) s14_projects_items, s14_members`,
	}
	for _, s := range stmts {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("create S14 tables: %w", err)
		}
	}
	w := &s14World{n: n, projects: projects, items: map[int][]int64{}, next: make([]int, n+1), seen: newS14Seen()}
	for k := range w.next {
		w.next[k] = s14Joined
	}
	rs, err := env.Pool.Query(ctx, `SELECT project_id, id FROM s14_projects_items`)
	if err != nil {
		return nil, fmt.Errorf("read S14 items: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var p int
		var id int64
		if err := rs.Scan(&p, &id); err != nil {
			return nil, fmt.Errorf("read S14 items: %w", err)
		}
		w.items[p] = append(w.items[p], id)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read S14 items: %w", err)
	}
	return w, nil
}

// follow creates the shapes of users from..to with s4CreateWorkers concurrent initial
// syncs and leaves each long-polling; it returns how long creation took.
func (w *s14World) follow(ctx context.Context, env *Env, from, to int) (time.Duration, error) {
	client := newClient(to - from + 16)
	var next atomic.Int64
	next.Store(int64(from))
	errc := make(chan error, s4CreateWorkers)
	var wg sync.WaitGroup
	start := time.Now()
	for range s4CreateWorkers {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k <= to; k = int(next.Add(1) - 1) {
				q := s14Shape(env.URL, k)
				res, err := syncShape(ctx, client, q)
				if err != nil {
					errc <- fmt.Errorf("create shape of user %d: %w", k, err)
					return
				}
				go w.seen.follow(ctx, client, q, k, res.state)
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	return time.Since(start), nil
}

func s14Shape(base string, user int) shapeReq {
	q := newShapeReq(base, s14Items, s14Where)
	q.params.Set("params[1]", strconv.Itoa(user))
	return q
}

// join makes user k a member of a project with items it is not in yet and
// waits until all of them reach k's client; it returns the time from the
// COMMIT returning to the last of them arriving.
func (w *s14World) join(ctx context.Context, env *Env, k int) (time.Duration, error) {
	committed, want, err := w.insertMember(ctx, env, k)
	if err != nil {
		return 0, err
	}
	at, err := w.seen.await(ctx, k, want, s14AwaitTimeout)
	if err != nil {
		return 0, err
	}
	return max(0, at.Sub(committed)), nil
}

// insertMember commits one members row for user k (a project it has not
// joined) and returns when the COMMIT returned and the ids that must move
// in.
func (w *s14World) insertMember(ctx context.Context, env *Env, k int) (time.Time, []int64, error) {
	p := w.nextProject(k)
	if _, err := env.Pool.Exec(ctx, `INSERT INTO s14_members (user_id, project_id) VALUES ($1, $2)`, k, p); err != nil {
		return time.Time{}, nil, fmt.Errorf("insert member (%d, %d): %w", k, p, err)
	}
	return time.Now(), w.items[p], nil
}

// nextProject is a project with items user k has not joined (not safe for
// concurrent use on one user).
func (w *s14World) nextProject(k int) int {
	j := w.next[k]
	w.next[k]++
	return (k*s14Joined+j)%w.projects + 1
}

// s14Cost is what Postgres and volt did for the measured members changes.
type s14Cost struct {
	changes                 int
	xacts, tuples, scans    float64 // per change, from pg_stat_* deltas
	serverCPU, routeOnlyCPU time.Duration
}

func (c s14Cost) String() string {
	return fmt.Sprintf("per members change: %.2f Postgres transactions besides the INSERT, %.2f scans of %s, %.0f tuples returned; volt CPU %s (a change for a user without a shape: %s)",
		c.xacts, c.scans, s14Items, c.tuples, c.serverCPU.Round(100*time.Microsecond), c.routeOnlyCPU.Round(100*time.Microsecond))
}

type s14PGStats struct{ xacts, tuples, scans int64 }

// pgStats reads the database's committed transactions and tuples returned
// and the scans of the items table (the move-in queries' table). Other
// backends report them when they go idle, at most every second and after
// up to 10 s of idleness: the caller lets settle pass first.
func s14ReadPGStats(ctx context.Context, env *Env) (s14PGStats, error) {
	var s s14PGStats
	err := env.Pool.QueryRow(ctx, `SELECT d.xact_commit, d.tup_returned, coalesce(t.seq_scan, 0) + coalesce(t.idx_scan, 0)
		FROM pg_stat_database d, pg_stat_user_tables t WHERE d.datname = current_database() AND t.relname = $1`, s14Items).
		Scan(&s.xacts, &s.tuples, &s.scans)
	if err != nil {
		return s, fmt.Errorf("read pg_stat_database: %w", err)
	}
	return s, nil
}

// latency joins inserts users (spread over 1..n) to a project each, one
// at a time, timing COMMIT → all moved-in rows at the user's client; then
// as many changes for users that have no shape (routing only). It counts
// Postgres' work across the joins.
func (w *s14World) latency(ctx context.Context, env *Env, inserts int, settle time.Duration) (dist, s14Cost, error) {
	cost := s14Cost{changes: inserts}
	time.Sleep(settle)
	pg0, err := s14ReadPGStats(ctx, env)
	if err != nil {
		return dist{}, cost, err
	}
	mark := env.markCPU()
	ds := make([]time.Duration, 0, inserts)
	for i := range inserts {
		time.Sleep(s4BetweenCommits) // the client's next long poll parks
		d, err := w.join(ctx, env, 1+(i*7919)%w.n)
		if err != nil {
			return dist{}, cost, err
		}
		ds = append(ds, d)
	}
	cost.serverCPU = env.phaseSince("", mark).ServerCPU / time.Duration(inserts)
	time.Sleep(settle)
	pg1, err := s14ReadPGStats(ctx, env)
	if err != nil {
		return dist{}, cost, err
	}
	// The bench's own transactions: the inserts and the first stats read.
	cost.xacts = float64(pg1.xacts-pg0.xacts-int64(inserts)-1) / float64(inserts)
	cost.tuples = float64(pg1.tuples-pg0.tuples) / float64(inserts)
	cost.scans = float64(pg1.scans-pg0.scans) / float64(inserts)

	// Users n+1… have no shape: volt only routes these changes.
	mark = env.markCPU()
	for i := range inserts {
		time.Sleep(s4BetweenCommits)
		if _, err := env.Pool.Exec(ctx, `INSERT INTO s14_members (user_id, project_id) VALUES ($1, 1)`, w.n+1+i); err != nil {
			return dist{}, cost, fmt.Errorf("insert member without a shape: %w", err)
		}
	}
	// A join after them: its rows arriving means they were all routed.
	if _, err := w.join(ctx, env, 1); err != nil {
		return dist{}, cost, err
	}
	cost.routeOnlyCPU = env.phaseSince("", mark).ServerCPU / time.Duration(inserts+1)
	return summarize(ds), cost, nil
}

// s14Mem is volt's memory at one moment.
type s14Mem struct{ heap, rss int64 }

// s14MemResult is the memory per dependency value.
type s14MemResult struct {
	values                  int     // values added to the users' views
	heapPer, rssPer         float64 // bytes per added value
	createdValues           int     // values of the shapes at creation
	createdHeap, createdRSS float64 // bytes per value at creation, with the shapes' own cost
	users, perUser          int
}

func (m s14MemResult) String() string {
	return fmt.Sprintf("%d shapes of %d values more than %d others: heap %+.0f B/value, RSS %+.0f B/value; the N shapes' growth over their %d values (with each shape's own cost): heap %.0f B, RSS %.0f B per value",
		m.users, m.perUser, m.users, m.heapPer, m.rssPer, m.createdValues, m.createdHeap, m.createdRSS)
}

// s14Memory is the least of s14MemSamples readings of volt's heap in
// use and RSS, 200 ms apart: the heap in use includes garbage not yet
// collected, the least reading the least of it.
func s14Memory(ctx context.Context, metrics string, env *Env) (s14Mem, error) {
	var low s14Mem
	for i := range s14MemSamples {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		m, err := s14ReadMemory(ctx, metrics, env)
		if err != nil {
			return m, err
		}
		if i == 0 || m.heap < low.heap {
			low.heap = m.heap
		}
		if i == 0 || m.rss < low.rss {
			low.rss = m.rss
		}
	}
	return low, nil
}

// s14ReadMemory reads volt's heap in use (its /metrics) and RSS.
func s14ReadMemory(ctx context.Context, metrics string, env *Env) (s14Mem, error) {
	rss, _, err := env.ServerMemory()
	if err != nil {
		return s14Mem{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metrics, nil)
	if err != nil {
		return s14Mem{}, fmt.Errorf("build metrics request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s14Mem{}, fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return s14Mem{}, fmt.Errorf("heap in use %q: %w", v, err)
			}
			return s14Mem{heap: int64(f), rss: rss}, nil
		}
	}
	if err := sc.Err(); err != nil {
		return s14Mem{}, fmt.Errorf("read metrics: %w", err)
	}
	return s14Mem{}, fmt.Errorf("no go_memstats_heap_inuse_bytes in %s", metrics)
}

// memory creates the shapes of a control group of users, then as many
// of the memory users, which hold s14ExtraValues values more, and divides
// the difference in volt's growth by the extra values.
func (w *s14World) memory(ctx context.Context, env *Env, metrics string, before, created s14Mem) (s14MemResult, error) {
	users := min(w.n, s14MemoryUsers)
	perUser := s14ExtraValues / users
	r := s14MemResult{users: users, perUser: perUser, values: users * perUser, createdValues: w.n * s14Joined}
	r.createdHeap = float64(created.heap-before.heap) / float64(r.createdValues)
	r.createdRSS = float64(created.rss-before.rss) / float64(r.createdValues)
	var ms [3]s14Mem
	for i, base := range []int{0, s14ControlBase, s14MemoryBase} {
		if base > 0 {
			if _, err := w.follow(ctx, env, base+1, base+users); err != nil {
				return r, err
			}
		}
		var err error
		if ms[i], err = s14Memory(ctx, metrics, env); err != nil {
			return r, err
		}
	}
	control, mem := ms[1].heap-ms[0].heap, ms[2].heap-ms[1].heap
	r.heapPer = float64(mem-control) / float64(r.values)
	control, mem = ms[1].rss-ms[0].rss, ms[2].rss-ms[1].rss
	r.rssPer = float64(mem-control) / float64(r.values)
	return r, nil
}

// s14KeepUp is the outcome of the keep-up run.
type s14KeepUp struct {
	commits  int
	achieved float64 // commits/s the writers reached
	lag      time.Duration
	lat      dist
	missing  int
}

func (k s14KeepUp) String() string {
	return fmt.Sprintf("%d commits at %.0f tx/s; commit→client %s; lag after the last commit %s; %d not received", k.commits, k.achieved, k.lat.full(), ms(k.lag), k.missing)
}

// keepUp commits single-row members inserts (a user joining a project
// with items) at rate tx/s for d from s14Writers writers, then waits for
// every moved-in row.
func (w *s14World) keepUp(ctx context.Context, env *Env, rate int, d time.Duration) (s14KeepUp, error) {
	total := int(float64(rate) * d.Seconds())
	type job struct {
		user      int
		project   int
		committed time.Time
	}
	jobs := make([]job, total)
	for i := range jobs {
		k := 1 + (i*104729)%w.n
		jobs[i] = job{user: k, project: w.nextProject(k)}
	}
	var next atomic.Int64
	errc := make(chan error, s14Writers)
	var wg sync.WaitGroup
	start := time.Now()
	for range s14Writers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < total; i = int(next.Add(1) - 1) {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
				j := &jobs[i]
				if _, err := env.Pool.Exec(ctx, `INSERT INTO s14_members (user_id, project_id) VALUES ($1, $2)`, j.user, j.project); err != nil {
					errc <- fmt.Errorf("insert member (%d, %d): %w", j.user, j.project, err)
					return
				}
				j.committed = time.Now()
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return s14KeepUp{}, err
	default:
	}
	ku := s14KeepUp{commits: total}
	var last time.Time
	for _, j := range jobs {
		last = later(last, j.committed)
	}
	ku.achieved = float64(total) / last.Sub(start).Seconds()
	ds := make([]time.Duration, 0, total)
	var lastAt time.Time
	deadline := last.Add(s14AwaitTimeout)
	for _, j := range jobs {
		at, err := w.seen.await(ctx, j.user, w.items[j.project], time.Until(deadline))
		if err != nil {
			ku.missing++
			continue
		}
		ds = append(ds, max(0, at.Sub(j.committed)))
		lastAt = later(lastAt, at)
	}
	ku.lag = max(0, lastAt.Sub(last))
	if ku.missing > 0 {
		ku.lag = max(ku.lag, time.Since(last)) // at least: the rest never arrived
	}
	ku.lat = summarize(ds)
	if ku.missing == total {
		return ku, fmt.Errorf("keep-up: no moved-in rows received")
	}
	return ku, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// s14Seen records which item ids each user's client has received, and
// when.
type s14Seen struct {
	mu      sync.Mutex
	at      map[[2]int64]time.Time
	changed chan struct{}
	err     error
}

func newS14Seen() *s14Seen {
	return &s14Seen{at: map[[2]int64]time.Time{}, changed: make(chan struct{})}
}

// follow long-polls user k's shape from st until ctx ends.
func (s *s14Seen) follow(ctx context.Context, client *http.Client, q shapeReq, k int, st shapeState) {
	var buf bytes.Buffer
	for ctx.Err() == nil {
		p, err := get(ctx, client, q.url(st, true), &buf)
		if err == nil {
			var ids []int64
			if ids, err = insertedIDs(p.body); err == nil {
				st.advance(p)
				s.add(k, ids, p.received)
				continue
			}
		}
		if ctx.Err() == nil {
			s.fail(fmt.Errorf("client of user %d: %w", k, err))
		}
		return
	}
}

func (s *s14Seen) add(k int, ids []int64, at time.Time) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		key := [2]int64{int64(k), id}
		if _, ok := s.at[key]; !ok {
			s.at[key] = at
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *s14Seen) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// await returns when user k's client has received every id, with the
// time the last of them arrived.
func (s *s14Seen) await(ctx context.Context, k int, ids []int64, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		var last time.Time
		missing := slices.IndexFunc(ids, func(id int64) bool {
			at, ok := s.at[[2]int64{int64(k), id}]
			last = later(last, at)
			return !ok
		})
		err, changed := s.err, s.changed
		s.mu.Unlock()
		switch {
		case missing < 0:
			return last, nil
		case err != nil:
			return time.Time{}, err
		}
		select {
		case <-changed:
		case <-t.C:
			return time.Time{}, fmt.Errorf("user %d: row %d not received within %s", k, ids[missing], timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func s14CreateRow(n int, took time.Duration, before, after s14Mem) Row {
	perSec := float64(n) / took.Seconds()
	return Row{
		Scenario: "S14 setup: subquery shape creation",
		Params:   fmt.Sprintf("N=%s `%s`, %d concurrent initial syncs, %d rows each", count(n), s14Where, s4CreateWorkers, s14Joined*s14ItemsPer),
		Volt: fmt.Sprintf("%s (%s); heap %+.1f KB/shape, RSS %+.1f KB/shape", rate(perSec, "shapes"), ms(took),
			float64(after.heap-before.heap)/1024/float64(n), float64(after.rss-before.rss)/1024/float64(n)),
		Baseline: "–", Target: s14CreationTarget, VoltValue: perSec,
	}
}

func s14LatencyRow(n, inserts int, lat dist, plain latencies) Row {
	return Row{
		Scenario: "S14 members INSERT→moved-in rows at client",
		Params:   fmt.Sprintf("N=%s live subquery shapes; %d single-row members INSERTs, %d rows move in each; from COMMIT to the last row", count(n), inserts, s14ItemsPer),
		Volt:     lat.full(), Baseline: "plain shape, 1 row (S4 N=1): " + plain.fromCommit.String(),
		Ratio: ratio(msf(lat.p50), msf(plain.fromCommit.p50)), RatioOf: "p50",
		MoreRatios: []ExtraRatio{{Of: "p99", Value: ratio(msf(lat.p99), msf(plain.fromCommit.p99))}},
		Target:     s14LatencyTarget,
		VoltValue:  msf(lat.p50), BaselineValue: msf(plain.fromCommit.p50),
	}
}

func s14CostRow(n, inserts int, c s14Cost, plainCPU time.Duration) Row {
	if plainCPU == 0 { // below /proc's resolution (tiny runs)
		return Row{Scenario: "S14 cost per members change", Params: fmt.Sprintf("N=%s; %d joins", count(n), inserts),
			Volt: c.String(), Baseline: "–", Target: s14CostTarget, VoltValue: msf(c.serverCPU)}
	}
	return Row{
		Scenario: "S14 cost per members change",
		Params:   fmt.Sprintf("N=%s; %d joins; pg_stat_database xact_commit/tup_returned and pg_stat_user_tables scans, deltas; volt CPU from /proc", count(n), inserts),
		Volt:     c.String(), Baseline: "plain shape, 1-row commit: volt CPU " + plainCPU.String(),
		Ratio: ratio(msf(c.serverCPU), msf(plainCPU)), RatioOf: "volt CPU per commit",
		MoreRatios: []ExtraRatio{{Of: "routing-only CPU", Value: ratio(msf(c.routeOnlyCPU), msf(plainCPU))}},
		Target:     s14CostTarget,
		VoltValue:  msf(c.serverCPU), BaselineValue: msf(plainCPU),
	}
}

func s14MemoryRow(n int, m s14MemResult) Row {
	return Row{
		Scenario: "S14 memory per dependency value",
		Params: fmt.Sprintf("N=%s; %d more shapes, then %d whose users are members of %d more projects (without items); heap in use from /metrics, VmRSS (least of %d readings); growth difference ÷ extra values",
			count(n), m.users, m.users, m.perUser, s14MemSamples),
		Volt:     m.String(),
		Baseline: "–", Target: s14MemoryTarget,
		VoltValue: m.heapPer,
	}
}

func s14KeepUpRow(n, rate int, d time.Duration, k s14KeepUp, plain latencies) Row {
	return Row{
		Scenario: "S14 keep-up, members INSERTs",
		Params:   fmt.Sprintf("N=%s; %d tx/s for %s from %d writers, %d rows move in each", count(n), rate, d, s14Writers, s14ItemsPer),
		Volt:     k.String(), Baseline: "plain shape, 1 row (S4 N=1): " + plain.fromCommit.String(),
		Ratio: ratio(msf(k.lat.p99), msf(plain.fromCommit.p99)), RatioOf: "p99",
		Target:    s14KeepUpTarget,
		VoltValue: k.achieved, BaselineValue: msf(plain.fromCommit.p99),
	}
}
