package httpapi

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestShapeQuotaReserve: creations in progress count against a
// principal's quota, so concurrent requests cannot pass it together; a
// creation that made no shape frees its place, and principals are
// counted apart.
func TestShapeQuotaReserve(t *testing.T) {
	var q shapeQuota
	const limit = 5
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if q.reserve("ip:a", limit) {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != limit {
		t.Fatalf("%d concurrent creations admitted, want %d", n, limit)
	}
	if !q.reserve("ip:b", limit) {
		t.Fatal("another principal refused")
	}
	q.done("ip:a", nil, 0) // refused downstream: no shape
	if !q.reserve("ip:a", limit) {
		t.Fatal("a failed creation still counts")
	}
	if q.reserve("ip:a", limit) {
		t.Fatal("past the quota after a freed place")
	}
	for range limit {
		q.done("ip:a", nil, 0)
	}
	q.done("ip:b", nil, 0)
	if len(q.owners) != 0 || q.tracked != 0 {
		t.Fatalf("nothing created, yet %d principals and %d shapes tracked", len(q.owners), q.tracked)
	}
}
