package bench

import (
	"fmt"
	"slices"
	"time"
)

// dist summarises a set of latencies.
type dist struct {
	n                   int
	p50, p99, max, mean time.Duration
}

func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return dist{n: len(s), p50: pct(s, 50), p99: pct(s, 99), max: s[len(s)-1], mean: sum / time.Duration(len(s))}
}

// pct is the nearest-rank percentile of sorted s.
func pct(s []time.Duration, p int) time.Duration {
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func (d dist) String() string {
	return fmt.Sprintf("p50 %s, p99 %s", ms(d.p50), ms(d.p99))
}

func (d dist) full() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s, mean %s", ms(d.p50), ms(d.p99), ms(d.max), ms(d.mean))
}

// ms formats a duration in milliseconds with useful precision.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rate formats a count per second with a k/M suffix.
func rate(perSec float64, unit string) string {
	switch {
	case perSec >= 1e6:
		return fmt.Sprintf("%.2f M %s/s", perSec/1e6, unit)
	case perSec >= 1e3:
		return fmt.Sprintf("%.0f k %s/s", perSec/1e3, unit)
	}
	return fmt.Sprintf("%.0f %s/s", perSec, unit)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func mbps(bytes int64, d time.Duration) string {
	return fmt.Sprintf("%.0f MB/s", float64(bytes)/1e6/d.Seconds())
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}

func ratio(v, base float64) float64 {
	if base == 0 {
		return 0
	}
	return v / base
}
