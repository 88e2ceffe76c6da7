package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNextRanges(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		b      Backoff
		ceils  []time.Duration // ceilings of the first delays
		jitter float64
	}{
		{"full", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: Full},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}, 1},
		{"equal by default", Backoff{Initial: 100 * ms, Max: 500 * ms},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 500 * ms, 500 * ms}, 0.5},
		{"third, multiplier 3", Backoff{Initial: 150 * ms, Max: 2 * time.Second, Multiplier: 3, Jitter: 1.0 / 3},
			[]time.Duration{150 * ms, 450 * ms, 1350 * ms, 2 * time.Second}, 1.0 / 3},
		{"max below initial", Backoff{Initial: 100 * ms, Max: 10 * ms, Jitter: Full},
			[]time.Duration{100 * ms, 100 * ms}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			for round := 0; round < 2; round++ {
				for i, ceil := range tc.ceils {
					if got := b.Ceiling(); got != ceil {
						t.Fatalf("round %d delay %d: ceiling %v, want %v", round, i, got, ceil)
					}
					lo := ceil - time.Duration(float64(ceil)*tc.jitter)
					// Many draws of the same step: all in range, and
					// spread over it (not always one end).
					seen := [2]bool{}
					for k := 0; k < 200; k++ {
						c := b
						d := c.Next()
						if d < lo || d > ceil {
							t.Fatalf("round %d delay %d: %v outside [%v, %v]", round, i, d, lo, ceil)
						}
						seen[0] = seen[0] || d < lo+(ceil-lo)/4
						seen[1] = seen[1] || d > ceil-(ceil-lo)/4
					}
					if !seen[0] || !seen[1] {
						t.Fatalf("round %d delay %d: 200 draws did not cover [%v, %v]", round, i, lo, ceil)
					}
					b.Next()
					if b.Attempts() != i+1 {
						t.Fatalf("Attempts() = %d after %d delays", b.Attempts(), i+1)
					}
				}
				b.Reset()
				if b.Attempts() != 0 {
					t.Fatalf("Attempts() = %d after Reset", b.Attempts())
				}
			}
		})
	}
}

func TestNextLongSeriesStaysAtMax(t *testing.T) {
	b := Backoff{Initial: time.Nanosecond, Max: time.Hour, Jitter: Full}
	for i := 0; i < 5000; i++ {
		if d := b.Next(); d < 0 || d > time.Hour {
			t.Fatalf("delay %d: %v outside [0, 1h]", i, d)
		}
	}
	if c := b.Ceiling(); c != time.Hour {
		t.Fatalf("ceiling after 5000 delays: %v, want 1h", c)
	}
}

func TestNextZeroInitial(t *testing.T) {
	var b Backoff
	if d := b.Next(); d != 0 {
		t.Fatalf("zero Backoff: delay %v, want 0", d)
	}
}

func TestSleep(t *testing.T) {
	cause := errors.New("stopped by test")
	ctx, cancel := context.WithCancelCause(context.Background())
	start := time.Now()
	if err := Sleep(ctx, 20*time.Millisecond); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("Sleep(20ms) returned after %v", el)
	}
	if err := Sleep(ctx, 0); err != nil {
		t.Fatalf("Sleep(0) on a live context: %v", err)
	}
	cancel(cause)
	if err := Sleep(ctx, time.Hour); !errors.Is(err, cause) {
		t.Fatalf("Sleep on a cancelled context: %v, want the cause", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, cause) {
		t.Fatalf("Sleep(0) on a cancelled context: %v, want the cause", err)
	}
}

func TestWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := Backoff{Initial: time.Hour, Max: time.Hour}
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return when its context was cancelled")
	}
	if b.Attempts() != 1 {
		t.Fatalf("Attempts() = %d after one Wait", b.Attempts())
	}
}
