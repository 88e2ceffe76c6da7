// Package bench measures volt against baselines run on the same machine in
// the same run: Postgres' own COPY for initial sync, LISTEN/NOTIFY for
// commit-to-client latency and fan-out, a naive poller that re-runs each
// shape's query every 100 ms, plain INSERTs over pgx for the write round
// trip, the writers' TPS without volt and pg_recvlogical → /dev/null for
// replication keep-up, the shapes' own queries over pgx for shape creation,
// the idle server for stalled clients, a new shape of the same rows for log
// growth, and volt itself at the smallest size for the scenarios that
// scale (unrelated shapes, fan-out, many clients, restart).
//
// Run starts a throwaway Postgres (pgembed, fsync on) and `volt serve` as a
// child process on a free loopback port, runs the scenarios of
// ../shared/performance.md §6 that this version covers (S1, S4, S5, S10,
// S8, S11, S2, S3, S13, S14, S12) with bounded counts, and returns one Row per measurement and one
// Plot per sweep. `volt bench` prints the rows as a table and writes them,
// with the plots as PNGs, to bench/results/.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// Sizes bound every scenario.
type Sizes struct {
	S1Rows    []int // rows of the initial-sync tables
	S4Shapes  []int // unrelated shapes (the N = 1 baseline always runs first)
	S4Commits int   // single-row commits measured per shape count
	S5Clients []int // live clients of the fan-out shape (the C = 1 baseline always runs first)
	// S10Writers are the concurrent writers of the write round trip; each
	// count runs the INSERT baseline, the POST alone and the round trip for
	// S10Duration each.
	S10Writers  []int
	S10Duration time.Duration
	// S15Clients each write one transaction per second for S15Duration
	// (the write storm).
	S15Clients  int
	S15Duration time.Duration
	// S8Shapes are the shape counts of the replication keep-up test (sizes
	// beyond the open-files limit give a FAILED row), S8Rates its target
	// commit rates (0: as fast as the writers go), S8Duration each rate's.
	S8Shapes   []int
	S8Rates    []int
	S8Duration time.Duration
	// S11Shapes are the idle-shape counts for memory and restart (beyond
	// the open-files limit: a FAILED row), S11Parked the parked live requests.
	S11Shapes []int
	S11Parked int
	// S2Clients are the clients that sync one new 500-row shape together
	// (the C = 1 baseline always runs first).
	S2Clients []int
	// S3Shapes are the counts of new 500-row shapes requested concurrently.
	S3Shapes []int
	// S12Rows are the ≈ 4 KB rows of the stalled clients' shape (its body
	// is S12Rows × 4 KB), S12Clients the stalled connections, S12Watch how
	// long the bench waits for the server to drop them.
	S12Rows    int
	S12Clients int
	S12Watch   time.Duration
	// S13Updates are the updates of the one-row table, S13Rows and
	// S13Rounds the uniformly updated table, S13CompactWait how long fresh
	// downloads are repeated waiting for compaction.
	S13Updates     int
	S13Rows        int
	S13Rounds      int
	S13CompactWait time.Duration
	// S14Users are the users with one live subquery shape each, S14Joins
	// the timed members INSERTs, S14Rate and S14Duration the keep-up run,
	// S14Settle how long Postgres' statistics are given to arrive.
	S14Users    int
	S14Joins    int
	S14Rate     int
	S14Duration time.Duration
	S14Settle   time.Duration
}

// QuickSizes finish in under 3 minutes on a 2-core machine.
func QuickSizes() Sizes {
	return Sizes{S1Rows: []int{10_000}, S4Shapes: []int{100, 1_000}, S4Commits: 50, S5Clients: []int{100, 1_000},
		S10Writers: []int{1, 8, 32, 256}, S10Duration: 3 * time.Second, S15Clients: 1_000, S15Duration: 3 * time.Second,
		S8Shapes: []int{1_000, 10_000}, S8Rates: []int{500, 1_000, 0}, S8Duration: 3 * time.Second,
		S11Shapes: []int{500, 10_000}, S11Parked: 1_000,
		S2Clients: []int{50, 450}, S3Shapes: []int{50, 500},
		S12Rows: 8_000, S12Clients: 20, S12Watch: 6 * time.Second,
		S13Updates: 200, S13Rows: 2_000, S13Rounds: 5, S13CompactWait: 5 * time.Second,
		S14Users: 1_000, S14Joins: 100, S14Rate: 1_000, S14Duration: 3 * time.Second, S14Settle: 11 * time.Second}
}

// FullSizes add the large sizes.
func FullSizes() Sizes {
	return Sizes{
		S1Rows: []int{10_000, 100_000, 1_000_000}, S4Shapes: []int{100, 1_000, 10_000, 100_000},
		S4Commits: 50, S5Clients: []int{100, 1_000, 5_000},
		S10Writers: []int{1, 8, 32, 256}, S10Duration: 5 * time.Second, S15Clients: 1_000, S15Duration: 10 * time.Second,
		S8Shapes: []int{1_000, 100_000}, S8Rates: []int{250, 500, 1_000, 2_000, 5_000, 0}, S8Duration: 8 * time.Second,
		S11Shapes: []int{1_000, 10_000, 100_000}, S11Parked: 5_000,
		S2Clients: []int{50, 450, 850, 1_250, 1_650, 2_050}, S3Shapes: []int{50, 500, 1_850, 3_650},
		S12Rows: 12_000, S12Clients: 100, S12Watch: 15 * time.Second,
		S13Updates: 1_000, S13Rows: 10_000, S13Rounds: 5, S13CompactWait: 10 * time.Second,
		S14Users: 10_000, S14Joins: 100, S14Rate: 1_000, S14Duration: 5 * time.Second, S14Settle: 11 * time.Second,
	}
}

// TinySizes only check that every scenario runs (tests).
func TinySizes() Sizes {
	return Sizes{S1Rows: []int{1_000}, S4Shapes: []int{5}, S4Commits: 5, S5Clients: []int{5},
		S10Writers: []int{1, 2}, S10Duration: 200 * time.Millisecond, S15Clients: 20, S15Duration: time.Second,
		S8Shapes: []int{20}, S8Rates: []int{200, 0}, S8Duration: 300 * time.Millisecond,
		S11Shapes: []int{10}, S11Parked: 5,
		S2Clients: []int{5}, S3Shapes: []int{5},
		S12Rows: 500, S12Clients: 3, S12Watch: time.Second,
		S13Updates: 20, S13Rows: 200, S13Rounds: 2, S13CompactWait: time.Second,
		S14Users: 20, S14Joins: 10, S14Rate: 200, S14Duration: 500 * time.Millisecond}
}

// Config is one benchmark run.
type Config struct {
	Mode  string // label: quick, full, tiny
	Sizes Sizes
	// ServerCmd runs `volt serve` (argv; the environment is added by Run).
	ServerCmd []string
	// CPUProfileDir, when set, receives one pprof CPU profile of the bench
	// (client) process per scenario: <dir>/<scenario>.pprof.
	CPUProfileDir string
	// WorkDir holds Postgres, the shape storage and logs; "" makes a temp dir
	// that is removed afterwards.
	WorkDir string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// Only, when set, names the scenarios to run ("s2", "S13", …); the
	// others are skipped.
	Only []string
}

// ExtraRatio is a further volt ÷ baseline ratio of a row, on another metric.
type ExtraRatio struct {
	Of    string
	Value float64
}

// Row is one line of the result table.
type Row struct {
	Scenario string
	Params   string
	Volt     string // volt's figure, formatted
	Baseline string // the baseline's figure from the same run, formatted
	// Ratio is VoltValue ÷ BaselineValue on the headline metric named by
	// RatioOf (0 when there is no baseline).
	Ratio         float64
	RatioOf       string
	MoreRatios    []ExtraRatio // printed after Ratio
	Target        string
	VoltValue     float64
	BaselineValue float64
	// Err is set when volt failed the measurement (the Volt cell says how).
	Err string
}

// Report is the outcome of Run.
type Report struct {
	Mode     string
	Started  time.Time
	Elapsed  time.Duration
	Machine  Machine
	Rows     []Row
	Phases   []Phase  // CPU and wall time per scenario
	Settings []string // how Postgres and volt were configured
	Plots    []*Plot  // one per sweep
}

// scenario is one named part of a run.
type scenario struct {
	name string
	run  func(ctx context.Context, env *Env) ([]Row, error)
}

// Run starts Postgres and volt, runs every scenario and stops them again.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.ServerCmd) == 0 {
		return nil, errors.New("bench: ServerCmd is required")
	}
	if err := raiseFileLimit(); err != nil {
		return nil, err
	}
	if _, err := selectScenarios(scenarios(cfg.Sizes), cfg.Only); err != nil {
		return nil, err
	}
	rep := &Report{Mode: cfg.Mode, Started: time.Now()}
	env, err := StartEnv(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	rep.Machine = describeMachine(ctx, env)
	rep.Settings = env.Settings()
	list, err := selectScenarios(scenarios(cfg.Sizes), cfg.Only)
	if err != nil {
		return nil, err
	}
	for i, sc := range list {
		if i > 0 {
			if err := env.RestartServer(ctx); err != nil {
				return nil, err
			}
		}
		mark := env.markCPU()
		rows, err := runProfiled(ctx, cfg.CPUProfileDir, sc, env)
		if err == nil {
			err = env.Alive()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w\nvolt serve log (tail):\n%s", sc.name, err, env.logTail())
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Phases = append(rep.Phases, env.phaseSince(sc.name, mark))
	}
	rep.Elapsed = time.Since(rep.Started)
	rep.Plots = env.plots
	return rep, nil
}

func scenarios(sz Sizes) []scenario {
	return []scenario{
		{"s1", func(ctx context.Context, env *Env) ([]Row, error) { return runS1(ctx, env, sz.S1Rows) }},
		{"s4", func(ctx context.Context, env *Env) ([]Row, error) { return runS4(ctx, env, sz.S4Shapes, sz.S4Commits) }},
		{"s5", func(ctx context.Context, env *Env) ([]Row, error) { return runS5(ctx, env, sz.S5Clients) }},
		{"s10", func(ctx context.Context, env *Env) ([]Row, error) {
			return runS10(ctx, env, sz.S10Writers, sz.S10Duration)
		}},
		{"s15", func(ctx context.Context, env *Env) ([]Row, error) {
			return runS15(ctx, env, sz.S15Clients, sz.S15Duration)
		}},
		{"s8", func(ctx context.Context, env *Env) ([]Row, error) {
			return runS8(ctx, env, sz.S8Shapes, sz.S8Rates, sz.S8Duration)
		}},
		{"s11", func(ctx context.Context, env *Env) ([]Row, error) {
			return runS11(ctx, env, sz.S11Shapes, sz.S11Parked)
		}},
		{"s2", func(ctx context.Context, env *Env) ([]Row, error) { return runS2(ctx, env, sz.S2Clients) }},
		{"s3", func(ctx context.Context, env *Env) ([]Row, error) { return runS3(ctx, env, sz.S3Shapes) }},
		{"s13", func(ctx context.Context, env *Env) ([]Row, error) {
			return runS13(ctx, env, sz.S13Updates, sz.S13Rows, sz.S13Rounds, sz.S13CompactWait)
		}},
		{"s14", func(ctx context.Context, env *Env) ([]Row, error) {
			return runS14(ctx, env, sz.S14Users, sz.S14Joins, sz.S14Rate, sz.S14Duration, sz.S14Settle)
		}},
		{"s12", func(ctx context.Context, env *Env) ([]Row, error) {
			return runS12(ctx, env, sz.S12Rows, sz.S12Clients, sz.S12Watch)
		}},
	}
}

// selectScenarios keeps the scenarios named in only (case-insensitive),
// in run order; empty keeps all.
func selectScenarios(all []scenario, only []string) ([]scenario, error) {
	if len(only) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range only {
		want[strings.ToLower(strings.TrimSpace(n))] = true
	}
	var out []scenario
	for _, sc := range all {
		if want[sc.name] {
			out = append(out, sc)
			delete(want, sc.name)
		}
	}
	if len(want) > 0 {
		var names []string
		for _, sc := range all {
			names = append(names, sc.name)
		}
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		slices.Sort(unknown)
		return nil, fmt.Errorf("bench: unknown scenario %s (have %s)", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return out, nil
}

// runProfiled runs sc, under a CPU profile of this process when dir is set.
func runProfiled(ctx context.Context, dir string, sc scenario, env *Env) ([]Row, error) {
	env.progress("== %s", sc.name)
	if dir == "" {
		return sc.run(ctx, env)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create profile dir: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, sc.name+".pprof"))
	if err != nil {
		return nil, fmt.Errorf("create profile: %w", err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, fmt.Errorf("start profile: %w", err)
	}
	defer pprof.StopCPUProfile()
	return sc.run(ctx, env)
}
