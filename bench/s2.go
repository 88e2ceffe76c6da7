package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	s2Table   = "s2_items"
	s2Rows    = 500
	s2Target  = "≤ 1 s mean at 2 050 clients; one shape, one snapshot (Electric 1.0-beta: ≈ 25 s mean at 2 000, 4 vCPU)"
	s2Timeout = 60 * time.Second
)

// runS2 measures many clients syncing one small shape that none of them
// has made yet: C clients start together from offset=-1 and each reads
// until up-to-date. Each client count gets a new shape of the same 500
// rows (where id > -C), so every step starts cold. The baseline is C = 1.
func runS2(ctx context.Context, env *Env, clients []int) ([]Row, error) {
	if err := createItems(ctx, env, s2Table, s2Rows); err != nil {
		return nil, err
	}
	one, err := s2Swarm(ctx, env, 1)
	if err != nil {
		return nil, fmt.Errorf("C = 1: %w", err)
	}
	env.progress("S2: C=1 %s", one.lat.full())
	pl := env.plot("s2", "S2: C clients sync one new 500-row shape, time to up-to-date", "clients C", "ms from the common start")
	pl.add("volt mean", 1, msf(one.lat.mean))
	pl.add("volt max", 1, msf(one.lat.max))
	pl.add("C=1 mean (baseline)", 1, msf(one.lat.mean))
	var rows []Row
	for _, c := range clients {
		if lim := fileLimit(); uint64(c)+100 > lim {
			rows = append(rows, s2FailedRow(c, fmt.Sprintf("not run: %d clients need more than the open-files limit %d", c, lim)))
			continue
		}
		r, err := s2Swarm(ctx, env, c)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			env.progress("S2: C=%d failed: %v", c, err)
			died, rerr := env.revive(ctx)
			if rerr != nil {
				return nil, rerr
			}
			if died != "" {
				err = fmt.Errorf("%s (%w)", died, err)
			}
			rows = append(rows, s2FailedRow(c, err.Error()))
			continue
		}
		env.progress("S2: C=%d %s; %s", c, r.lat.full(), r.shapesText())
		pl.add("volt mean", float64(c), msf(r.lat.mean))
		pl.add("volt max", float64(c), msf(r.lat.max))
		pl.add("C=1 mean (baseline)", float64(c), msf(one.lat.mean))
		pl.hline("target mean 1 s at 2 050", 1000)
		rows = append(rows, s2Row(c, r, one))
	}
	return rows, nil
}

// s2Result is one swarm: every client's time to up-to-date, and what the
// server made for them.
type s2Result struct {
	lat      dist
	handles  int    // distinct electric-handle values the clients ended on
	dirs     int    // new shape directories on disk (-1: layout unknown)
	stats    string // the server's own shape count change (GET /v1/stats), if it has one
	requests int
}

func (r s2Result) shapesText() string {
	s := fmt.Sprintf("%d distinct handle(s)", r.handles)
	if r.dirs >= 0 {
		s += fmt.Sprintf(", %d new shape dir(s) on disk", r.dirs)
	}
	if r.stats != "" {
		s += ", /v1/stats " + r.stats
	} else {
		s += ", no shape count from /v1/stats"
	}
	return s
}

// s2Swarm starts c clients together on a new shape and waits for all.
func s2Swarm(ctx context.Context, env *Env, c int) (s2Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s2Timeout)
	defer cancel()
	q := newShapeReq(env.URL, s2Table, "id > -"+strconv.Itoa(c))
	dirsBefore, dirsOK := env.shapeDirs()
	statsBefore, statsOK := env.serverStats(ctx)
	client := newClient(c)
	defer client.CloseIdleConnections()
	type result struct {
		res syncResult
		at  time.Time
		err error
	}
	results := make(chan result, c)
	gate := make(chan struct{})
	var ready sync.WaitGroup
	ready.Add(c)
	for range c {
		go func() {
			ready.Done()
			<-gate
			res, err := syncShape(ctx, client, q)
			results <- result{res: res, at: time.Now(), err: err}
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	handles := map[string]bool{}
	lat := make([]time.Duration, 0, c)
	var out s2Result
	var firstErr error
	failed := 0
	for range c {
		r := <-results
		switch {
		case r.err != nil:
			failed++
			firstErr = cmpErr(firstErr, r.err)
		case r.res.rows != s2Rows:
			failed++
			firstErr = cmpErr(firstErr, fmt.Errorf("a client synced %d rows, want %d", r.res.rows, s2Rows))
		default:
			lat = append(lat, r.at.Sub(start))
			handles[r.res.state.handle] = true
			out.requests += r.res.requests
		}
	}
	if firstErr != nil {
		return out, fmt.Errorf("%d of %d clients failed, first: %w", failed, c, firstErr)
	}
	out.lat, out.handles, out.dirs = summarize(lat), len(handles), -1
	if dirs, ok := env.shapeDirs(); ok && dirsOK {
		out.dirs = dirs - dirsBefore
	}
	if statsAfter, ok := env.serverStats(ctx); ok && statsOK {
		k, before, okB := statsShapeCount(statsBefore)
		_, after, okA := statsShapeCount(statsAfter)
		if okB && okA {
			out.stats = fmt.Sprintf("%s %+g", k, after-before)
		}
	}
	return out, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func s2Params(c int) string {
	return fmt.Sprintf("C=%s clients start together from offset=-1 on one new %d-row shape, each on its own connection, read until up-to-date", count(c), s2Rows)
}

func s2Row(c int, r, one s2Result) Row {
	return Row{
		Scenario: "S2 many clients, one small shape",
		Params:   s2Params(c),
		Volt:     fmt.Sprintf("%s; %s; %.1f requests/client", r.lat.full(), r.shapesText(), float64(r.requests)/float64(c)),
		Baseline: "C=1: " + one.lat.full(),
		Ratio:    ratio(msf(r.lat.mean), msf(one.lat.mean)), RatioOf: "mean",
		MoreRatios: []ExtraRatio{{Of: "max", Value: ratio(msf(r.lat.max), msf(one.lat.max))}},
		Target:     s2Target,
		VoltValue:  msf(r.lat.mean), BaselineValue: msf(one.lat.mean),
	}
}

func s2FailedRow(c int, reason string) Row {
	reason = strings.SplitN(reason, "\n", 2)[0]
	return Row{Scenario: "S2 many clients, one small shape", Params: s2Params(c), Volt: "FAILED: " + reason,
		Baseline: "–", Target: s2Target, Err: reason}
}
