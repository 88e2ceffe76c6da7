package bench

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"time"

	"github.com/voltsync/volt"
)

const (
	s11Table         = "s11_items"
	s11ShapeTarget   = "≤ 2 KB RAM per idle shape (100k ≤ 200 MB); Electric after fixes ≈ 2.6 KB"
	s11PollTarget    = "≤ 16 KB per parked poll (bare net/http measured 15.7 KB here, performance.md §4.4)"
	s11RestartTarget = "restart ≤ 1 s per 100k shapes"
	// s11Settle lets the last responses' buffers go and volt close the
	// logs of shapes idle for 5 s, so the figure is for idle shapes.
	s11Settle = 6 * time.Second
)

// runS11 measures density and restart: the server's resident memory per
// parked live request and per idle shape (VmRSS differences), and the time
// from starting volt serve on existing storage to it serving a shape, with
// as many shapes as the open-files limit allows. The restart baseline is the
// same restart with one shape.
func runS11(ctx context.Context, env *Env, shapes []int, parked int) ([]Row, error) {
	feasible := 1
	for _, n := range shapes {
		if s8Feasible(n) {
			feasible = max(feasible, n)
		}
	}
	if err := createOwnerTable(ctx, env, s11Table, feasible); err != nil {
		return nil, err
	}
	probe := newShapeReq(env.URL, s11Table, "owner_id = 0")
	client := newClient(1)
	res, err := syncShape(ctx, client, probe)
	client.CloseIdleConnections()
	if err != nil {
		return nil, err
	}
	var rows []Row
	r, err := s11Parked(ctx, env, res.state, parked)
	if err != nil {
		return nil, fmt.Errorf("parked polls: %w", err)
	}
	rows = append(rows, r)
	// The restart baseline also gives the idle shapes a fresh process, so
	// the parked polls' freed memory does not hide their growth.
	one, err := s11Restart(ctx, env, 0)
	if err != nil {
		return nil, fmt.Errorf("restart with 1 shape: %w", err)
	}
	env.progress("S11: restart with 1 shape: %s", one)
	have := 1
	for _, n := range shapes {
		if !s8Feasible(n) {
			reason := fmt.Sprintf("not run: %s shapes need ≈ %d open files in volt serve (%d per shape today), the limit is %d",
				count(n), n*s8FDsPerShape, s8FDsPerShape, fileLimit())
			rows = append(rows,
				Row{Scenario: "S11 memory per idle shape", Params: s11ShapeParams(n), Volt: "FAILED: " + reason, Baseline: "–", Target: s11ShapeTarget, Err: reason},
				Row{Scenario: "S11 restart-to-ready", Params: s11RestartParams(n), Volt: "FAILED: " + reason, Baseline: "–", Target: s11RestartTarget, Err: reason})
			continue
		}
		before, err := s11Usage(ctx, env)
		if err != nil {
			return nil, err
		}
		took, made, err := createShapesOf(ctx, env, s11Table, have, n-1)
		if err != nil {
			return nil, fmt.Errorf("create shapes (%d made): %w", made, err)
		}
		after, err := s11Usage(ctx, env)
		if err != nil {
			return nil, err
		}
		created := n - have
		have = n
		env.progress("S11: %d shapes (created %d in %s): RSS %s → %s", n, created, took.Round(time.Millisecond), mib(before.rss), mib(after.rss))
		rows = append(rows, s11ShapeRow(n, created, before, after))
		rt, err := s11Restart(ctx, env, n/2)
		if err != nil {
			return nil, fmt.Errorf("restart with %d shapes: %w", n, err)
		}
		env.progress("S11: restart with %d shapes: %s", n, rt)
		rows = append(rows, s11RestartRow(n, rt, one))
	}
	return rows, nil
}

// s11Use is the server's memory, files and storage at one moment.
type s11Use struct {
	serverUsage
	disk int64
}

func s11Usage(ctx context.Context, env *Env) (s11Use, error) {
	select {
	case <-time.After(s11Settle): // let the last responses' buffers go
	case <-ctx.Done():
		return s11Use{}, ctx.Err()
	}
	u, err := env.usage()
	if err != nil {
		return s11Use{}, err
	}
	return s11Use{serverUsage: u, disk: dirSize(env.storageDir())}, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func s11ShapeParams(n int) string {
	return fmt.Sprintf("%s idle shapes `owner_id = k` (1-row snapshots, created with %d concurrent offset=-1 requests); VmRSS after − before, %s after the last", count(n), s4CreateWorkers, s11Settle)
}

func s11ShapeRow(n, created int, before, after s11Use) Row {
	per := float64(after.rss-before.rss) / float64(created)
	return Row{
		Scenario: "S11 memory per idle shape",
		Params:   s11ShapeParams(n),
		Volt: fmt.Sprintf("%+.1f KB/shape (RSS %s → %s); %+.1f open fds/shape; disk %.1f KB/shape",
			per/1024, mib(before.rss), mib(after.rss), float64(after.fds-before.fds)/float64(created), float64(after.disk-before.disk)/1024/float64(created)),
		Baseline: "–", Target: s11ShapeTarget, VoltValue: per / 1024,
	}
}

// s11Parked parks c live requests on the probe shape and measures the
// server's RSS growth per request; one insert then releases them.
func s11Parked(ctx context.Context, env *Env, st shapeState, c int) (Row, error) {
	if lim := fileLimit(); uint64(c)+100 > lim {
		c = int(lim) - 100
	}
	q := newShapeReq(env.URL, s11Table, "owner_id = 0")
	client := newClient(c)
	defer client.CloseIdleConnections()
	// Every poll opens a new connection, so the difference includes the
	// connection's buffers: that is what a parked client costs.
	lat, perPoll, err := fanoutRound(ctx, env, client, q, &st, c)
	if err != nil {
		return Row{}, err
	}
	d := summarize(lat)
	env.progress("S11: %d parked polls: %+.1f KB each; released in %s", c, perPoll/1024, d.full())
	return Row{
		Scenario: "S11 memory per parked live request",
		Params:   fmt.Sprintf("C=%s live long polls on one shape, each on its own new connection; VmRSS with them parked − before", count(c)),
		Volt:     fmt.Sprintf("%+.1f KB/parked poll; one insert then released all: %s", perPoll/1024, d.full()),
		Baseline: "–", Target: s11PollTarget, VoltValue: perPoll / 1024,
	}, nil
}

// s11RestartResult is one stop and start on the same storage.
type s11RestartResult struct {
	stop, healthy, served time.Duration // served: from exec to the shape's response
	sameHandle            bool
	rss                   int64 // right after the shape was served
}

func (r s11RestartResult) String() string {
	return fmt.Sprintf("stop %s, /v1/health active after %s, shape served after %s, same handle %v, RSS %s",
		ms(r.stop), ms(r.healthy), ms(r.served), r.sameHandle, mib(r.rss))
}

// s11Restart stops volt and starts it on the same storage, timing until
// /v1/health is active and an offset=-1 request for shape owner_id = k is
// served; it checks whether the shape kept its handle.
func s11Restart(ctx context.Context, env *Env, k int) (s11RestartResult, error) {
	q := newShapeReq(env.URL, s11Table, "owner_id = "+strconv.Itoa(k))
	client := newClient(1)
	var buf bytes.Buffer
	p, err := get(ctx, client, q.url(startState(), false), &buf)
	client.CloseIdleConnections()
	if err != nil {
		return s11RestartResult{}, err
	}
	handle := p.header.Get(volt.HeaderHandle)
	var r s11RestartResult
	stopped := time.Now()
	env.stopServer()
	r.stop = time.Since(stopped)
	start := time.Now()
	if err := env.launch(ctx); err != nil {
		return r, err
	}
	r.healthy = time.Since(start)
	q.base = env.URL // a new port
	client = newClient(1)
	defer client.CloseIdleConnections()
	if p, err = get(ctx, client, q.url(startState(), false), &buf); err != nil {
		return r, err
	}
	r.served = time.Since(start)
	r.sameHandle = p.header.Get(volt.HeaderHandle) == handle
	r.rss, _, err = env.ServerMemory()
	return r, err
}

func s11RestartParams(n int) string {
	return fmt.Sprintf("%s shapes on disk; SIGTERM, then volt serve again on the same storage and slot; timed from exec to a served offset=-1 request for an existing shape", count(n))
}

func s11RestartRow(n int, r, one s11RestartResult) Row {
	return Row{
		Scenario: "S11 restart-to-ready",
		Params:   s11RestartParams(n),
		Volt:     fmt.Sprintf("ready %s (%s)", ms(r.served), r),
		Baseline: fmt.Sprintf("1 shape: ready %s (%s)", ms(one.served), one),
		Ratio:    ratio(msf(r.served), msf(one.served)), RatioOf: "ready",
		Target:    s11RestartTarget,
		VoltValue: msf(r.served), BaselineValue: msf(one.served),
	}
}
