package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestS14Tiny runs S14 (membership subquery shapes) alone at the tiny
// sizes and checks its rows: every measurement is there, well-formed, and
// every moved-in row reached its user's client (the keep-up run misses
// none).
func TestS14Tiny(t *testing.T) {
	bin := buildVolt(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{Mode: "tiny", Sizes: TinySizes(), ServerCmd: []string{bin, "serve"},
		Progress: testLog{t}, Only: []string{"s14"}})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("S14 at tiny sizes took %s", time.Since(start))
	checkRows(t, rep.Rows)
	for _, s := range []string{"S14 setup: subquery shape creation", "S14 members INSERT→moved-in rows at client",
		"S14 cost per members change", "S14 memory per dependency value", "S14 keep-up, members INSERTs"} {
		if !hasScenario(rep.Rows, s) {
			t.Errorf("no %q row", s)
		}
	}
	for _, r := range rep.Rows {
		if r.Scenario == "S14 keep-up, members INSERTs" && !strings.Contains(r.Volt, "; 0 not received") {
			t.Errorf("keep-up lost moved-in rows: %s", r.Volt)
		}
	}
}
