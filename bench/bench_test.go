package bench

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildVolt builds the volt binary: the bench starts it as `volt serve`.
func buildVolt(t *testing.T) string {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("built volt in %s", time.Since(start)) }()
	bin := filepath.Join(t.TempDir(), "volt")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/volt").CombinedOutput()
	if err != nil {
		t.Fatalf("build volt: %v\n%s", err, out)
	}
	return bin
}

// TestQuickScenariosRun runs every scenario at the smallest size and checks
// the rows are well-formed; it asserts nothing about timings.
func TestQuickScenariosRun(t *testing.T) {
	profiles := t.TempDir()
	bin := buildVolt(t)
	// A bound against a hang, not a timing check: the tiny run takes about
	// a minute on a quiet machine and several at a load average of 15.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Mode: "tiny", Sizes: TinySizes(), ServerCmd: []string{bin, "serve"},
		CPUProfileDir: profiles, Progress: testLog{t},
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkRows(t, rep.Rows)
	for _, s := range []string{"S1 initial sync, cold", "S1 initial sync, warm", "S4 INSERT sent→client, floor",
		"S4 commit→client, N unrelated shapes", "S4 setup: shape creation", "S5 fan-out, one insert",
		"S10 write→echo round trip", "S10 POST alone (answer, no echo)",
		"S4 vs naive poller", "S5 fan-out vs LISTEN/NOTIFY", "S8 replication keep-up", "S8 decoding limit",
		"S11 memory per idle shape", "S11 memory per parked live request", "S11 restart-to-ready",
		"S2 many clients, one small shape", "S3 concurrent shape creation", "S12 stalled clients", "S13 log growth and compaction",
		"S14 members INSERT→moved-in rows at client", "S14 keep-up, members INSERTs",
		"S15 write storm"} {
		if !hasScenario(rep.Rows, s) {
			t.Errorf("no %q row", s)
		}
	}
	checkS10(t, rep.Rows, len(TinySizes().S10Writers))
	for _, name := range []string{"s1", "s4", "s5", "s10", "s15", "s8", "s11", "s2", "s3", "s13", "s14", "s12"} {
		if fi, err := os.Stat(filepath.Join(profiles, name+".pprof")); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
	if n := len(scenarios(TinySizes())); len(rep.Phases) != n {
		t.Errorf("%d phases, want %d: %+v", len(rep.Phases), n, rep.Phases)
	}
	// A phase of a few tens of milliseconds may honestly show no CPU:
	// /proc counts whole 10 ms ticks. What must hold is that it ran.
	for _, p := range rep.Phases {
		if p.Wall <= 0 || p.ServerCPU < 0 || p.ClientCPU < 0 || p.PGCPU < 0 {
			t.Errorf("phase %+v is not well-formed", p)
		}
	}
	checkOutputs(t, rep)
}

// testLog sends progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func checkRows(t *testing.T, rows []Row) {
	t.Helper()
	for _, r := range rows {
		if r.Err != "" {
			t.Errorf("%s (%s) failed: %s", r.Scenario, r.Params, r.Err)
		}
		if r.Scenario == "" || r.Params == "" || r.Volt == "" || r.Baseline == "" || r.Target == "" {
			t.Errorf("row with an empty cell: %+v", r)
		}
		// A latency can read 0 at tiny sizes (the row raced ahead of the
		// COMMIT acknowledgement), and so can a ratio over it; so can the
		// memory stalled clients pin (the heap reuses the first read's).
		zeroOK := strings.Contains(r.Volt, "p50 0.00 ms") || r.Scenario == "S12 stalled clients"
		if r.VoltValue < 0 || (r.VoltValue == 0 && !zeroOK) {
			t.Errorf("%s (%s): volt figure %v is not positive", r.Scenario, r.Params, r.VoltValue)
		}
		zeroBase := r.BaselineValue == 0 && strings.Contains(r.Baseline, "p50 0.00 ms")
		if r.Baseline != "–" && ((r.BaselineValue <= 0 && !zeroBase) || r.Ratio < 0 || r.RatioOf == "" ||
			(r.Ratio == 0 && r.VoltValue != 0 && !zeroBase)) {
			t.Errorf("%s (%s): baseline %v, ratio %v of %q", r.Scenario, r.Params, r.BaselineValue, r.Ratio, r.RatioOf)
		}
		for _, x := range r.MoreRatios {
			if x.Of == "" || x.Value < 0 {
				t.Errorf("%s (%s): further ratio %+v", r.Scenario, r.Params, x)
			}
		}
	}
}

// checkS10 wants a round-trip and a POST-alone row per writer count, each
// with writes/s and p99 beside p50.
func checkS10(t *testing.T, rows []Row, levels int) {
	t.Helper()
	var rt, post int
	for _, r := range rows {
		switch r.Scenario {
		case "S10 write→echo round trip":
			rt++
		case "S10 POST alone (answer, no echo)":
			post++
		default:
			continue
		}
		if !strings.Contains(r.Volt, "writes/s") || !strings.Contains(r.Baseline, "inserts/s") || !strings.HasPrefix(r.Params, "W=") {
			t.Errorf("S10 row lacks a rate or W: %+v", r)
		}
		if len(r.MoreRatios) < 2 {
			t.Errorf("S10 row without the p99 and writes/s ratios: %+v", r)
		}
	}
	if rt != levels || post != levels {
		t.Errorf("%d round-trip and %d POST-alone rows, want %d of each", rt, post, levels)
	}
}

func hasScenario(rows []Row, name string) bool {
	for _, r := range rows {
		if r.Scenario == name {
			return true
		}
	}
	return false
}

// checkOutputs renders the table and the results file.
func checkOutputs(t *testing.T, rep *Report) {
	t.Helper()
	var table bytes.Buffer
	if err := WriteTable(&table, rep.Rows); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(table.String(), "\n"); n != len(rep.Rows)+1 {
		t.Errorf("table has %d lines, want %d:\n%s", n, len(rep.Rows)+1, table.String())
	}
	path, err := WriteResults(t.TempDir(), rep, "go test")
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| scenario |", "PostgreSQL: ", "Go: go", "## How it ran", "## Sweeps"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("results file lacks %q:\n%s", want, md)
		}
	}
	plots := map[string]bool{}
	for _, p := range rep.Plots {
		plots[p.Name] = true
		name := strings.TrimSuffix(filepath.Base(path), ".md") + "-" + p.Name + ".png"
		if !bytes.Contains(md, []byte("]("+name+")")) {
			t.Errorf("results file does not embed %s", name)
		}
		f, err := os.Open(filepath.Join(filepath.Dir(path), name))
		if err != nil {
			t.Errorf("plot %s: %v", p.Name, err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 100 {
			t.Errorf("plot %s is not a PNG: %v", p.Name, err)
		}
		for _, s := range p.Series {
			if len(s.Points) == 0 {
				t.Errorf("plot %s: series %q has no points", p.Name, s.Name)
			}
		}
	}
	for _, want := range []string{"s4", "s5", "s8", "s10", "s2", "s3"} {
		if !plots[want] {
			t.Errorf("no %s plot", want)
		}
	}
	t.Logf("\n%s", table.String())
}
