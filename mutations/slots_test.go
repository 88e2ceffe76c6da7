package mutations

import (
	"context"
	"testing"
	"time"
)

// TestSlotsFewestTurnsFirst: a released slot goes to the waiter with the
// fewest turns, then to the earliest; a cancelled waiter leaves the queue.
func TestSlotsFewestTurnsFirst(t *testing.T) {
	s := newSlots(1)
	if err := s.acquire(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	// waitArrival waits until the n-th waiter has queued.
	waitArrival := func(n uint64) {
		for deadline := time.Now().Add(10 * time.Second); s.arrivals() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued", n)
			}
		}
	}
	var n uint64
	wait := func(name string, turns int) {
		go func() {
			if err := s.acquire(context.Background(), turns); err == nil {
				got <- name
			}
		}()
		n++
		waitArrival(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error)
	go func() { cancelled <- s.acquire(ctx, 0) }()
	n++
	waitArrival(n)
	wait("big-7", 7)
	wait("big-2", 2)
	wait("small-a", 0)
	wait("small-b", 0)
	cancel()
	if err := <-cancelled; err == nil {
		t.Fatal("a cancelled waiter got a slot")
	}
	for _, want := range []string{"small-a", "small-b", "big-2", "big-7"} {
		s.release()
		if name := <-got; name != want {
			t.Fatalf("slot went to %s, want %s", name, want)
		}
	}
	s.release()
	if s.free != 1 || len(s.waiters) != 0 {
		t.Fatalf("free %d, waiters %d", s.free, len(s.waiters))
	}
}

func (s *slots) arrivals() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived
}
