package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestS1ColdProbe times the cold and warm syncs of five
// (VOLT_S1_PROBE_TABLES) tables in one volt serve, each next to its COPY,
// to tell a shape's fixed cost from the first shape's (new connections);
// every sync must deliver every row. The suite runs it on 500 rows per
// table; VOLT_S1_PROBE=<rows> makes it a measurement by hand (VOLT_S1_BIN
// names the volt binary to run, else one is built).
func TestS1ColdProbe(t *testing.T) {
	n := 500
	if k, _ := strconv.Atoi(os.Getenv("VOLT_S1_PROBE")); k > 0 {
		n = k
	}
	bin := os.Getenv("VOLT_S1_BIN")
	if bin == "" {
		bin = buildVolt(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{bin, "serve"}
	if os.Getenv("VOLT_S1_PROBE_STEPS") != "" {
		args = append(args, "-log-level", "debug")
	}
	env, err := StartEnv(ctx, Config{Mode: "probe", ServerCmd: args, Progress: testLog{t}, WorkDir: os.Getenv("VOLT_S1_PROBE_DIR")})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	tables := 5
	if k, _ := strconv.Atoi(os.Getenv("VOLT_S1_PROBE_TABLES")); k > 0 {
		tables = k
	}
	for i := range tables {
		table := fmt.Sprintf("probe_%d_%d", n, i)
		if err := createItems(ctx, env, table, n); err != nil {
			t.Fatal(err)
		}
		base, err := copyTable(ctx, env, table)
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("VOLT_S1_PROBE_STEPS") != "" {
			q := newShapeReq(env.URL, table, "")
			client := newClient(1)
			var buf bytes.Buffer
			st := startState()
			start := time.Now()
			t.Logf("%s: start %s", table, start.Format("15:04:05.000000"))
			for k := 0; k < 1000; k++ {
				p, err := get(ctx, client, q.url(st, false), &buf)
				if err != nil {
					t.Fatal(err)
				}
				st.advance(p)
				if k < 2 || p.upToDate() {
					t.Logf("%s request %d: %v, %d bytes", table, k, time.Since(start), len(p.body))
				}
				if p.upToDate() {
					break
				}
			}
			continue
		}
		cold, err := timedSync(ctx, newShapeReq(env.URL, table, ""), n)
		if err != nil {
			t.Fatal(err)
		}
		warm, err := timedSync(ctx, newShapeReq(env.URL, table, ""), n)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: COPY %v, cold %v (%.2f×), warm %v", table, base.dur, cold.dur, cold.rowsPerSec()/base.rowsPerSec(), warm.dur)
	}
}
