package bench

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot is one sweep: series of (x, y) points drawn as lines on log-log
// axes (the swept parameters and the latencies both span decades).
type Plot struct {
	Name, Title, XLabel, YLabel string
	Series                      []*Series
}

// Series is one line of a plot. Names containing "target" are drawn
// dashed, names containing "baseline" thinner.
type Series struct {
	Name   string
	Points []Point
	// Across draws the series as one horizontal line at its first point's
	// Y (a target) or, with Down, one vertical line at its first X (a
	// baseline rate), spanning the whole plot.
	Across, Down bool
}

// Point is one measurement.
type Point struct{ X, Y float64 }

// plot returns the plot called name, registering it on first use.
func (e *Env) plot(name, title, xLabel, yLabel string) *Plot {
	for _, p := range e.plots {
		if p.Name == name {
			return p
		}
	}
	p := &Plot{Name: name, Title: title, XLabel: xLabel, YLabel: yLabel}
	e.plots = append(e.plots, p)
	return p
}

// hline draws a horizontal line at y across the plot (a target).
func (p *Plot) hline(name string, y float64) {
	for _, s := range p.Series {
		if s.Name == name {
			return
		}
	}
	p.Series = append(p.Series, &Series{Name: name, Points: []Point{{math.NaN(), y}}, Across: true})
}

// vline draws a vertical line at x down the plot (a baseline's rate).
func (p *Plot) vline(name string, x float64) {
	for _, s := range p.Series {
		if s.Name == name {
			return
		}
	}
	p.Series = append(p.Series, &Series{Name: name, Points: []Point{{x, math.NaN()}}, Down: true})
}

// add appends a point to the series called name.
func (p *Plot) add(name string, x, y float64) {
	if x <= 0 || y <= 0 || math.IsNaN(y) || math.IsInf(y, 0) {
		y = math.Max(y, 0.001) // log axes: clamp a zero reading to the floor
		if x <= 0 {
			return
		}
	}
	for _, s := range p.Series {
		if s.Name == name {
			s.Points = append(s.Points, Point{x, y})
			return
		}
	}
	p.Series = append(p.Series, &Series{Name: name, Points: []Point{{x, y}}})
}

// The PNG's size in pixels.
const plotW, plotH = 960, 600

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
}

// PNG renders the plot with gonum/plot: log-log axes with 1-2-5 ticks,
// a title, the axis labels (with their units) and a legend in the top
// left corner, above the data.
func (p *Plot) PNG() ([]byte, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.Title.TextStyle.Font.Size = vg.Points(13)
	pl.X.Label.Text = p.XLabel + " (log scale)"
	pl.Y.Label.Text = p.YLabel + " (log scale)"
	for _, a := range []*plot.Axis{&pl.X, &pl.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(11)
		a.Tick.Label.Font.Size = vg.Points(10)
		a.Scale = plot.LogScale{}
		a.Tick.Marker = plot.TickerFunc(logTicks)
	}
	x0, x1, y0, y1 := p.bounds()
	pl.X.Min, pl.X.Max, pl.Y.Min, pl.Y.Max = x0, x1, y0, y1
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{0xdd}
	grid.Horizontal.Color = color.Gray{0xdd}
	pl.Add(grid)
	pl.Legend.Top, pl.Legend.Left = true, true
	pl.Legend.XOffs, pl.Legend.YOffs = vg.Points(8), -vg.Points(4)
	pl.Legend.TextStyle.Font.Size = vg.Points(11)
	pl.Legend.Padding = vg.Points(2)
	for i, s := range p.Series {
		pts := s.drawn(x0, x1, y0, y1)
		if len(pts) == 0 {
			continue
		}
		ln, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("plot %s, series %q: %w", p.Name, s.Name, err)
		}
		ln.Color = palette[i%len(palette)]
		ln.Width = vg.Points(2)
		if strings.Contains(s.Name, "baseline") {
			ln.Width = vg.Points(1.5)
		}
		if strings.Contains(s.Name, "target") {
			ln.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
		}
		pl.Add(ln)
		if s.Across || s.Down || strings.Contains(s.Name, "target") {
			pl.Legend.Add(s.Name, ln)
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, fmt.Errorf("plot %s, series %q: %w", p.Name, s.Name, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: ln.Color, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
		pl.Add(sc)
		pl.Legend.Add(s.Name, ln, sc)
	}
	// The PNG is plotW × plotH pixels at 96 dots per inch.
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(plotW)*vg.Inch/96, vg.Length(plotH)*vg.Inch/96), vgimg.UseDPI(96))
	pl.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", p.Name, err)
	}
	return buf.Bytes(), nil
}

// drawn are the points of s to draw within the axes' ranges, sorted by
// X: a line across or down spans the whole range, and points a log axis
// cannot show are left out.
func (s *Series) drawn(x0, x1, y0, y1 float64) plotter.XYs {
	switch {
	case len(s.Points) == 0:
		return nil
	case s.Across:
		return plotter.XYs{{X: x0, Y: s.Points[0].Y}, {X: x1, Y: s.Points[0].Y}}
	case s.Down:
		return plotter.XYs{{X: s.Points[0].X, Y: y0}, {X: s.Points[0].X, Y: y1}}
	}
	var out plotter.XYs
	for _, pt := range s.Points {
		if drawable(pt.X) && drawable(pt.Y) {
			out = append(out, plotter.XY{X: pt.X, Y: pt.Y})
		}
	}
	slices.SortFunc(out, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
	return out
}

// drawable says whether v can be placed on a log axis.
func drawable(v float64) bool { return v > 0 && !math.IsInf(v, 0) }

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// bounds are the ranges of the axes, padded by 5% of their log width,
// with room at the top for the legend (one line per series). A plot
// without points spans 1 to 10 on both axes.
func (p *Plot) bounds() (x0, x1, y0, y1 float64) {
	x0, y0 = math.Inf(1), math.Inf(1)
	x1, y1 = math.Inf(-1), math.Inf(-1)
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if drawable(pt.X) {
				x0, x1 = math.Min(x0, pt.X), math.Max(x1, pt.X)
			}
			if drawable(pt.Y) {
				y0, y1 = math.Min(y0, pt.Y), math.Max(y1, pt.Y)
			}
		}
	}
	if math.IsInf(x0, 1) {
		x0, x1 = 1, 10
	}
	if math.IsInf(y0, 1) {
		y0, y1 = 1, 10
	}
	lx0, lx1 := math.Log10(x0), math.Log10(x1)
	ly0, ly1 := math.Log10(y0), math.Log10(y1)
	if lx1-lx0 < 0.5 {
		lx0, lx1 = lx0-0.25, lx1+0.25
	}
	if ly1-ly0 < 0.5 {
		ly0, ly1 = ly0-0.25, ly1+0.25
	}
	dx, dy := lx1-lx0, ly1-ly0
	// The legend takes about 20 px per line of the ≈ 500 px data height.
	legend := math.Min(float64(len(p.Series)*20+12)/500, 0.6)
	ly1 += dy * (0.05 + legend/(1-legend))
	return math.Pow(10, lx0-0.05*dx), math.Pow(10, lx1+0.05*dx), math.Pow(10, ly0-0.05*dy), math.Pow(10, ly1)
}

// logTicks are the 1-2-5 values within [min, max], labelled; a range
// narrower than that gets unlabelled minor ticks at the other integers.
func logTicks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for k := math.Floor(math.Log10(min)); k <= math.Ceil(math.Log10(max)); k++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, k)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = tickText(v)
			}
			out = append(out, t)
		}
	}
	return out
}

func tickText(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
