// Package backoff computes the waits between retries: exponential growth
// with jitter, capped.
//
// The n-th delay in a row (n from 0) has the ceiling
// d = min(Max, Initial·Multiplierⁿ) and is uniform in [d·(1−Jitter), d]:
// Jitter 1 is "full jitter" (uniform in [0, d], what clients use so that
// many of them retrying at once spread out), 0.5 "equal jitter" (uniform in
// [d/2, d], the default, so that a server never retries at once).
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Jitter fractions.
const (
	Full  = 1.0 // delays uniform in [0, d]
	Equal = 0.5 // delays uniform in [d/2, d]
)

// Backoff yields the delays of a series of retries. The zero value with
// Initial and Max set is ready to use. A Backoff is not safe for
// concurrent use.
type Backoff struct {
	// Initial is the ceiling of the first delay; Max caps every ceiling
	// (a Max below Initial counts as Initial).
	Initial, Max time.Duration
	// Multiplier is the growth of the ceiling per retry: default 2.
	Multiplier float64
	// Jitter is the random fraction of each delay, in (0, 1]: default
	// Equal.
	Jitter float64

	n int
}

// Next returns the next delay and counts one attempt.
func (b *Backoff) Next() time.Duration {
	d := b.Ceiling()
	b.n++
	j := b.Jitter
	if j <= 0 || j > 1 {
		j = Equal
	}
	lo := d - time.Duration(float64(d)*j)
	return lo + rand.N(d-lo+1)
}

// Ceiling returns the largest delay Next can return now.
func (b *Backoff) Ceiling() time.Duration {
	if b.Initial <= 0 {
		return 0
	}
	m := b.Multiplier
	if m < 1 {
		m = 2
	}
	limit := max(b.Max, b.Initial)
	d := float64(b.Initial) * math.Pow(m, float64(b.n))
	if d >= float64(limit) { // also +Inf
		return limit
	}
	return time.Duration(d)
}

// Attempts returns the number of delays handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.n }

// Reset starts a new series: the next delay has the ceiling Initial.
func (b *Backoff) Reset() { b.n = 0 }

// Wait sleeps for the next delay, or until ctx ends (see Sleep).
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep waits d, or until ctx ends: it then returns context.Cause(ctx).
// With d ≤ 0 it only checks ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
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
