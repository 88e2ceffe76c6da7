package client

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff computes exponential delays with full jitter: the n-th delay in
// a row is uniform in [0, min(max, min·2ⁿ)].
type backoff struct {
	min, max time.Duration
	n        int
}

// next returns the next delay, at least floor.
func (b *backoff) next(floor time.Duration) time.Duration {
	ceil := b.max
	if b.n < 32 && b.min<<b.n < b.max && b.min<<b.n > 0 {
		ceil = b.min << b.n
	}
	b.n++
	d := rand.N(ceil + 1)
	return max(d, floor)
}

func (b *backoff) reset() { b.n = 0 }

// retryAfter returns the delay a Retry-After header asks for: seconds or
// an HTTP date. 0 when absent or invalid.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Fast-loop detection, as in the TypeScript client: non-live answers that
// leave the offset where it was.
const (
	fastLoopWindow     = 500 * time.Millisecond
	fastLoopCount      = 5
	fastLoopDetections = 5
)

// loopGuard notices a server that answers non-live requests without
// progress and slows the stream down, then gives up.
type loopGuard struct {
	times      []time.Time
	detections int
	wait       backoff
}

// noProgress records an answer that did not advance the offset and returns
// how long to wait before the next request, or ErrFastLoop.
func (g *loopGuard) noProgress(now time.Time) (time.Duration, error) {
	keep := g.times[:0]
	for _, t := range g.times {
		if now.Sub(t) < fastLoopWindow {
			keep = append(keep, t)
		}
	}
	g.times = append(keep, now)
	if len(g.times) < fastLoopCount {
		return 0, nil
	}
	g.times = g.times[:0]
	g.detections++
	if g.detections >= fastLoopDetections {
		return 0, ErrFastLoop
	}
	g.wait.min, g.wait.max = 100*time.Millisecond, 5*time.Second
	return g.wait.next(0), nil
}

// progress forgets earlier answers without progress.
func (g *loopGuard) progress() {
	g.times = g.times[:0]
	g.detections = 0
	g.wait.reset()
}
