package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestS15Tiny runs S15 (the write storm) alone at the tiny sizes: one row,
// well-formed, with every client's writes accepted, the rates and the
// Postgres CPU per write of both sides.
func TestS15Tiny(t *testing.T) {
	bin := buildVolt(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Mode: "tiny", Sizes: TinySizes(), ServerCmd: []string{bin, "serve"},
		Progress: testLog{t}, Only: []string{"s15"}})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkRows(t, rep.Rows)
	if len(rep.Rows) != 1 || rep.Rows[0].Scenario != "S15 write storm" {
		t.Fatalf("rows %+v", rep.Rows)
	}
	r := rep.Rows[0]
	if !strings.Contains(r.Volt, "writes/s accepted (20 in") || !strings.Contains(r.Baseline, "inserts/s (20)") ||
		!strings.Contains(r.Volt, "Postgres CPU") || !strings.Contains(r.Baseline, "Postgres CPU") || len(r.MoreRatios) != 3 {
		t.Errorf("S15 row: %+v", r)
	}
}
