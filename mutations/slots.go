package mutations

import (
	"context"
	"slices"
	"sync"
)

// slots hands the pool's connections out to client transactions. A free
// connection goes first to the waiting request that has run the fewest
// transactions so far (then to the earliest): a request with one small
// transaction waits for one running transaction to end, not for every
// transaction that large requests queued before it.
type slots struct {
	mu      sync.Mutex
	free    int
	arrived uint64
	waiters []*slotWaiter // by turns, then arrival
}

type slotWaiter struct {
	turns   int
	arrival uint64
	ready   chan struct{}
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire waits for a slot; turns is how many transactions the request has
// run so far.
func (s *slots) acquire(ctx context.Context, turns int) error {
	s.mu.Lock()
	if s.free > 0 && len(s.waiters) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	s.arrived++
	w := &slotWaiter{turns: turns, arrival: s.arrived, ready: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(s.waiters, w, func(a, b *slotWaiter) int {
		if a.turns != b.turns {
			return a.turns - b.turns
		}
		return int(a.arrival - b.arrival)
	})
	s.waiters = slices.Insert(s.waiters, i, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		if i := slices.Index(s.waiters, w); i >= 0 {
			s.waiters = slices.Delete(s.waiters, i, i+1)
			s.mu.Unlock()
			return ctx.Err()
		}
		s.mu.Unlock()
		s.release() // granted meanwhile: pass it on
		return ctx.Err()
	}
}

// release gives the slot to the first waiter, or frees it.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiters) == 0 {
		s.free++
		return
	}
	w := s.waiters[0]
	s.waiters = s.waiters[1:]
	close(w.ready)
}
