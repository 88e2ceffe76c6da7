package bench

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"slices"
	"strconv"
	"strings"
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

const (
	plotW, plotH = 960, 600
	marginL      = 90
	marginR      = 20
	marginT      = 50
	marginB      = 70
	fontScale    = 2
)

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
}

// PNG renders the plot.
func (p *Plot) PNG() ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	black := color.RGBA{0, 0, 0, 0xff}
	grey := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	x0, x1, y0, y1 := p.bounds()
	pw, ph := plotW-marginL-marginR, plotH-marginT-marginB
	tx := func(x float64) int {
		return marginL + int(math.Round((math.Log10(x)-x0)/(x1-x0)*float64(pw)))
	}
	ty := func(y float64) int {
		return marginT + ph - int(math.Round((math.Log10(y)-y0)/(y1-y0)*float64(ph)))
	}
	// Grid and ticks: 1, 2, 5 × 10^k.
	for _, v := range ticks(x0, x1) {
		x := tx(v)
		line(img, x, marginT, x, marginT+ph, grey, false)
		line(img, x, marginT+ph, x, marginT+ph+5, black, false)
		s := tickText(v)
		text(img, x-textWidth(s, 1)/2, marginT+ph+9, s, black, 1)
	}
	for _, v := range ticks(y0, y1) {
		y := ty(v)
		line(img, marginL, y, marginL+pw, y, grey, false)
		line(img, marginL-5, y, marginL, y, black, false)
		s := tickText(v)
		text(img, marginL-8-textWidth(s, 1), y-3, s, black, 1)
	}
	line(img, marginL, marginT, marginL, marginT+ph, black, false)
	line(img, marginL, marginT+ph, marginL+pw, marginT+ph, black, false)
	text(img, (plotW-textWidth(p.Title, fontScale))/2, 14, p.Title, black, fontScale)
	text(img, marginL+(pw-textWidth(p.XLabel+" (log)", fontScale))/2, plotH-28, p.XLabel+" (log)", black, fontScale)
	textUp(img, 12, marginT+(ph+textWidth(p.YLabel+" (log)", fontScale))/2, p.YLabel+" (log)", black, fontScale)
	// Lines, markers, legend.
	for i, s := range p.Series {
		c := palette[i%len(palette)]
		pts := slices.Clone(s.Points)
		slices.SortFunc(pts, func(a, b Point) int { return cmpFloat(a.X, b.X) })
		dashed := strings.Contains(s.Name, "target")
		switch {
		case s.Across:
			y := ty(pts[0].Y)
			thick(img, marginL, y, marginL+pw, y, c, dashed, true)
			pts = nil
		case s.Down:
			x := tx(pts[0].X)
			thick(img, x, marginT, x, marginT+ph, c, dashed, !strings.Contains(s.Name, "baseline"))
			pts = nil
		}
		for j := range pts {
			x, y := tx(pts[j].X), ty(pts[j].Y)
			if j > 0 {
				thick(img, tx(pts[j-1].X), ty(pts[j-1].Y), x, y, c, dashed, !strings.Contains(s.Name, "baseline"))
			}
			if !dashed {
				fill(img, x-3, y-3, x+3, y+3, c)
			}
		}
		ly := marginT + 8 + i*18
		lx := marginL + 12
		thick(img, lx, ly+3, lx+24, ly+3, c, dashed, true)
		text(img, lx+30, ly-3, s.Name, black, fontScale)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode %s: %w", p.Name, err)
	}
	return buf.Bytes(), nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// bounds are the log10 ranges of the axes, padded, with room at the top
// for the legend.
func (p *Plot) bounds() (x0, x1, y0, y1 float64) {
	x0, y0 = math.Inf(1), math.Inf(1)
	x1, y1 = math.Inf(-1), math.Inf(-1)
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if !math.IsNaN(pt.X) {
				x0, x1 = math.Min(x0, pt.X), math.Max(x1, pt.X)
			}
			if !math.IsNaN(pt.Y) {
				y0, y1 = math.Min(y0, pt.Y), math.Max(y1, pt.Y)
			}
		}
	}
	if math.IsInf(x0, 1) || math.IsInf(y0, 1) {
		return 0, 1, 0, 1
	}
	x0, x1 = math.Log10(x0), math.Log10(x1)
	y0, y1 = math.Log10(y0), math.Log10(y1)
	if x1-x0 < 0.5 {
		x0, x1 = x0-0.25, x1+0.25
	}
	if y1-y0 < 0.5 {
		y0, y1 = y0-0.25, y1+0.25
	}
	dx, dy := x1-x0, y1-y0
	legend := float64(len(p.Series)*18+16) / float64(plotH-marginT-marginB)
	return x0 - 0.05*dx, x1 + 0.05*dx, y0 - 0.05*dy, y1 + dy*(0.05+legend/(1-legend))
}

// ticks are the 1-2-5 values within the log10 range [a, b].
func ticks(a, b float64) []float64 {
	var out []float64
	for k := math.Floor(a); k <= math.Ceil(b); k++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, k)
			if l := math.Log10(v); l >= a && l <= b {
				out = append(out, v)
			}
		}
	}
	return out
}

func tickText(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func fill(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA) {
	draw.Draw(img, image.Rect(xa, ya, xb+1, yb+1), image.NewUniform(c), image.Point{}, draw.Src)
}

// line draws a 1-pixel line (Bresenham), dashed on request.
func line(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA, dashed bool) {
	dx, dy := abs(xb-xa), -abs(yb-ya)
	sx, sy := sign(xb-xa), sign(yb-ya)
	e := dx + dy
	for n := 0; ; n++ {
		if !dashed || (n/8)%2 == 0 {
			img.SetRGBA(xa, ya, c)
		}
		if xa == xb && ya == yb {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			xa += sx
		} else {
			e += dx
			ya += sy
		}
	}
}

// thick draws a 2-pixel line, or 1-pixel when bold is false.
func thick(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA, dashed, bold bool) {
	line(img, xa, ya, xb, yb, c, dashed)
	if bold {
		line(img, xa, ya+1, xb, yb+1, c, dashed)
		line(img, xa+1, ya, xb+1, yb, c, dashed)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// textWidth is the width of s in pixels at scale.
func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

// text draws s with its top-left corner at (x, y).
func text(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for _, r := range s {
		g := glyph(r)
		for row, bits := range g {
			for col := range 5 {
				if bits[col] == '#' {
					fill(img, x+col*scale, y+row*scale, x+col*scale+scale-1, y+row*scale+scale-1, c)
				}
			}
		}
		x += 6 * scale
	}
}

// textUp draws s rotated a quarter turn anticlockwise, starting at (x, y)
// and running upwards.
func textUp(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for _, r := range s {
		g := glyph(r)
		for row, bits := range g {
			for col := range 5 {
				if bits[col] == '#' {
					px, py := x+row*scale, y-col*scale
					fill(img, px, py-scale+1, px+scale-1, py, c)
				}
			}
		}
		y -= 6 * scale
	}
}

func glyph(r rune) [7]string {
	if g, ok := font[r]; ok {
		return g
	}
	if g, ok := font[[]rune(strings.ToUpper(string(r)))[0]]; ok {
		return g
	}
	return font['?']
}

// font is a 5×7 bitmap font: digits, capitals (lower case is drawn as
// capitals) and the punctuation the plots use.
var font = map[rune][7]string{
	' ':  {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'0':  {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1':  {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2':  {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3':  {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4':  {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5':  {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6':  {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7':  {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8':  {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9':  {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A':  {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B':  {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C':  {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D':  {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E':  {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F':  {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G':  {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H':  {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I':  {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J':  {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K':  {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L':  {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M':  {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N':  {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O':  {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P':  {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q':  {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R':  {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S':  {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T':  {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U':  {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V':  {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W':  {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X':  {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y':  {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z':  {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'.':  {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',':  {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':':  {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'-':  {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'+':  {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
	'=':  {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'/':  {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'(':  {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')':  {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'%':  {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
	'<':  {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."},
	'>':  {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."},
	'≤':  {"...#.", "..#..", ".#...", "..#..", "...#.", ".....", "#####"},
	'×':  {".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."},
	'÷':  {".....", "..#..", ".....", "#####", ".....", "..#..", "....."},
	'→':  {".....", "..#..", "...#.", "#####", "...#.", "..#..", "....."},
	'µ':  {".....", ".....", "#...#", "#...#", "#...#", "##.##", "#.#.."},
	'_':  {".....", ".....", ".....", ".....", ".....", ".....", "#####"},
	'\'': {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."},
	'?':  {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
}
