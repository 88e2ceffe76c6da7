package shapecache

import (
	"context"
	"sync"
)

// commitLog remembers the commit LSN of recently replicated transactions by
// their 32-bit xid, so the write endpoint can report a write's exact commit
// LSN once replication has delivered it.
type commitLog struct {
	mu      sync.Mutex
	lsn     map[uint32]uint64
	ring    []uint32 // insertion order, for eviction
	next    int
	changed chan struct{}
}

const commitLogSize = 1 << 16

func newCommitLog() *commitLog {
	return &commitLog{lsn: make(map[uint32]uint64, commitLogSize), ring: make([]uint32, 0, commitLogSize), changed: make(chan struct{})}
}

func (l *commitLog) note(xid uint32, lsn uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.lsn[xid]; !ok {
		if len(l.ring) < commitLogSize {
			l.ring = append(l.ring, xid)
		} else {
			delete(l.lsn, l.ring[l.next])
			l.ring[l.next] = xid
			l.next = (l.next + 1) % commitLogSize
		}
	}
	l.lsn[xid] = lsn
	close(l.changed)
	l.changed = make(chan struct{})
}

// wait returns the commit LSN of xid, waiting until replication delivers it
// or ctx ends.
func (l *commitLog) wait(ctx context.Context, xid uint32) (uint64, bool) {
	for {
		l.mu.Lock()
		lsn, ok := l.lsn[xid]
		ch := l.changed
		l.mu.Unlock()
		if ok {
			return lsn, true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, false
		}
	}
}

// CommitLSN returns the commit LSN of the transaction with the given 32-bit
// xid once replication has delivered it (only transactions that touch a
// published table are delivered), or false when ctx ends first.
func (c *Cache) CommitLSN(ctx context.Context, xid uint32) (uint64, bool) {
	return c.commits.wait(ctx, xid)
}
