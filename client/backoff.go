package client

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/voltsync/volt/internal/backoff"
)

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

// fullJitter returns the client's retry delays: the n-th in a row is
// uniform in [0, min(max, min·2ⁿ)].
func fullJitter(min, max time.Duration) backoff.Backoff {
	return backoff.Backoff{Initial: min, Max: max, Jitter: backoff.Full}
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
	wait       backoff.Backoff // set by newStream
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
	return g.wait.Next(), nil
}

// progress forgets earlier answers without progress.
func (g *loopGuard) progress() {
	g.times = g.times[:0]
	g.detections = 0
	g.wait.Reset()
}
