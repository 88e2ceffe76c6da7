package shapecache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/voltsync/volt"
)

// Postgres sends a commit to replication a moment before it is visible to
// new snapshots (for as long as a synchronous standby takes to answer:
// the commit record is flushed, then the backend waits, then it leaves the
// proc array). A transaction that volt routed before a shape was
// registered never reaches that shape; if the shape's snapshot does not
// hold it either, its changes are lost to the shape for good. So a
// snapshot is taken again, after a short wait, until it holds every
// transaction routed before the shape was registered (routedUnseen).
// Transactions routed later reach the shape through its buffer and are
// applied unless the snapshot holds them, so they need no check: that
// also keeps the wait from chasing an endless stream of new commits.

// errSnapshotUnseen makes a snapshot start over: it does not hold a
// transaction routed before its shape was registered.
var errSnapshotUnseen = errors.New("the snapshot does not hold a transaction replication has delivered")

// untilSeen runs attempt until it ends other than with errSnapshotUnseen,
// waiting 1 ms between attempts, twice as long each time up to 100 ms;
// what names the snapshot in the error when ctx ends first.
func untilSeen(ctx context.Context, what string, attempt func() error) error {
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := attempt()
		if !errors.Is(err, errSnapshotUnseen) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s waiting for delivered transactions to be visible: %w", what, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// unseenScan bounds how many of the latest handled commits routedUnseen
// checks. Transactions become visible in commit order (a synchronous
// standby acknowledges WAL in order), so the ones a new snapshot may miss
// are among the latest.
const unseenScan = 256

// routedLSN is the commit LSN of the last transaction routed: every
// transaction committed at or before it has reached the shapes registered
// at the time, and no later shape.
func (c *Cache) routedLSN() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.txns); n > 0 {
		return c.txns[n-1].tx.CommitLSN
	}
	return c.lastProcessed.Load()
}

// routedUnseen reports whether a transaction routed at or before routed
// (a routedLSN read after the shape was registered) is not visible in
// snap.
func (c *Cache) routedUnseen(snap volt.Snapshot, routed uint64) bool {
	c.mu.Lock()
	for _, st := range c.txns {
		if st.tx.CommitLSN <= routed && !snap.Visible(st.tx.Xid) {
			c.mu.Unlock()
			return true
		}
	}
	c.mu.Unlock()
	return c.commits.unseen(snap, routed)
}

// unseen reports whether one of the latest commits at or before routed is
// not visible in snap.
func (l *commitLog) unseen(snap volt.Snapshot, routed uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.ring)
	checked := 0
	for k := 1; k <= n && k <= 16*unseenScan && checked < unseenScan; k++ {
		xid := l.ring[(l.next-k+n)%n]
		lsn := l.lsn[xid]
		if lsn > routed {
			continue
		}
		checked++
		if !snap.Visible(xid) {
			return true
		}
	}
	return false
}
