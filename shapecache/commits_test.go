package shapecache

import (
	"context"
	"testing"
	"time"
)

func TestCommitLogWaitsAndEvicts(t *testing.T) {
	l := newCommitLog()
	got := make(chan uint64, 1)
	go func() {
		lsn, _ := l.wait(context.Background(), 7)
		got <- lsn
	}()
	l.note(6, 100)
	l.note(7, 200)
	if lsn := <-got; lsn != 200 {
		t.Fatalf("waited lsn = %d, want 200", lsn)
	}
	for x := uint32(1000); x < 1000+commitLogSize; x++ {
		l.note(x, uint64(x))
	}
	if _, ok := l.lsn[7]; ok {
		t.Fatal("old entries must be evicted")
	}
	if len(l.lsn) != commitLogSize {
		t.Fatalf("size %d, want %d", len(l.lsn), commitLogSize)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, ok := l.wait(ctx, 5); ok {
		t.Fatal("an unknown xid must not resolve")
	}
}
