package bench

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// plotFixture is a report's plots as the scenarios fill them, with small
// made-up figures: every chart the bench draws, with its targets and
// baselines.
func plotFixture() *Env {
	env := &Env{}
	s4 := env.plot("s4", "S4: commit to client latency vs unrelated shapes", "shapes N", "latency ms")
	for _, n := range []float64{1, 100, 1000, 10000} {
		s4.add("volt p50", n, 0.3+n/1e4)
		s4.add("volt p99", n, 1+n/1e3)
		s4.add("volt N=1 p50 (baseline)", n, 0.3)
		s4.add("100 ms poller p50 (baseline)", n, 55)
	}
	s4.hline("target p50 5 ms", 5)
	s4.hline("target p99 15 ms", 15)
	s5 := env.plot("s5", "S5: one insert to C live clients, time to each client", "clients C", "ms from sending the INSERT")
	for _, c := range []float64{1, 100, 1000} {
		s5.add("volt p50", c, 0.5+c/100)
		s5.add("volt max", c, 1+c/50)
		s5.add("NOTIFY p50 (baseline)", c, 0.2+c/200)
	}
	s5.hline("target mean 100 ms at 1k", 100)
	s8 := env.plot("s8", "S8: commit to client latency vs commit rate (single-row tx)", "committed tx/s", "ms from COMMIT")
	for _, r := range []float64{500, 1000, 6000} {
		s8.add("1k shapes p50", r, r/100)
		s8.add("1k shapes p99", r, r/10)
	}
	s8.hline("target commit→client 100 ms", 100)
	s8.vline("writers' max tx/s without volt (baseline)", 14000)
	s10 := env.plot("s10", "S10: write round trip latency vs concurrent writers", "writers W", "ms")
	for _, w := range []float64{1, 8, 32} {
		s10.add("volt round trip p50", w, 2*w)
		s10.add("INSERT over pgx p50 (baseline)", w, 0.5*w)
	}
	s10.hline("target p50 5 ms", 5)
	s2 := env.plot("s2", "S2: C clients sync one new 500-row shape, time to up-to-date", "clients C", "ms from the common start")
	for _, c := range []float64{1, 50, 450} {
		s2.add("volt mean", c, 10+c)
		s2.add("C=1 mean (baseline)", c, 10)
	}
	s2.hline("target mean 1 s at 2 050", 1000)
	s3 := env.plot("s3", "S3: N new 500-row shapes requested concurrently (64 in flight)", "shapes N", "shapes/s until all up-to-date")
	for _, n := range []float64{50, 500} {
		s3.add("volt shapes/s", n, 600)
		s3.add("Postgres queries/s (baseline)", n, 7000)
	}
	s3.hline("target 1 000 shapes/s", 1000)
	return env
}

func decodePlot(t *testing.T, p *Plot) image.Image {
	t.Helper()
	b, err := p.PNG()
	if err != nil {
		t.Fatalf("plot %s: %v", p.Name, err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("plot %s is not a PNG: %v", p.Name, err)
	}
	if got := img.Bounds().Size(); got != image.Pt(plotW, plotH) {
		t.Fatalf("plot %s is %v pixels, want %dx%d", p.Name, got, plotW, plotH)
	}
	return img
}

// hasColour says whether some pixel of img is close to c (lines are
// anti-aliased).
func hasColour(img image.Image, c color.RGBA) bool {
	near := func(a uint32, b uint8) bool { return max(a>>8, uint32(b))-min(a>>8, uint32(b)) <= 24 }
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, c.R) && near(g, c.G) && near(b, c.B) {
				return true
			}
		}
	}
	return false
}

// TestPlotsRender draws every chart of the fixture: each is a PNG of the
// expected size with every series' colour on it. VOLT_PLOT_DIR=<dir>
// keeps the PNGs to look at.
func TestPlotsRender(t *testing.T) {
	env := plotFixture()
	if len(env.plots) != 6 {
		t.Fatalf("fixture has %d plots, want 6", len(env.plots))
	}
	for _, p := range env.plots {
		img := decodePlot(t, p)
		for i, s := range p.Series {
			if c := palette[i%len(palette)]; !hasColour(img, c) {
				t.Errorf("plot %s: series %q (colour %v) is not drawn", p.Name, s.Name, c)
			}
		}
		if dir := os.Getenv("VOLT_PLOT_DIR"); dir != "" {
			b, _ := p.PNG()
			if err := os.WriteFile(filepath.Join(dir, p.Name+".png"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestPlotsDegenerate: a plot without series, with an empty series, with
// only a target, with one point, or with readings a log axis cannot show
// still renders.
func TestPlotsDegenerate(t *testing.T) {
	empty := &Plot{Name: "empty", Title: "no series", XLabel: "x", YLabel: "y"}
	emptySeries := &Plot{Name: "empty-series", Series: []*Series{{Name: "volt p50"}}}
	onlyTarget := &Plot{Name: "target"}
	onlyTarget.hline("target p50 5 ms", 5)
	onlyTarget.vline("baseline rate", 100)
	one := &Plot{Name: "one"}
	one.add("volt p50", 10, 3)
	odd := &Plot{Name: "odd"}
	odd.add("volt p50", 10, 0)
	odd.add("volt p50", 20, math.NaN())
	odd.add("volt p50", 30, math.Inf(1))
	odd.add("volt p50", -1, 5)
	odd.Series = append(odd.Series, &Series{Name: "raw", Points: []Point{{0, 0}, {math.NaN(), 1}, {1, math.Inf(-1)}}})
	for _, p := range []*Plot{empty, emptySeries, onlyTarget, one, odd} {
		decodePlot(t, p)
	}
}
