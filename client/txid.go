package client

// maxSeenTxids bounds the memory of txids seen in changes; the oldest are
// forgotten first.
const maxSeenTxids = 1 << 16

// maxSnapshots bounds the snapshot-end messages kept for AwaitTxid.
const maxSnapshots = 16

// txidTracker remembers which transactions a shape has seen: txids of
// changes committed by an up-to-date, and snapshot-ends.
type txidTracker struct {
	pending   map[uint32]struct{}
	seen      map[uint32]struct{}
	order     []uint32 // seen, oldest first
	snapshots []*SnapshotEnd
}

// change records the txids of a change not yet followed by an up-to-date.
func (t *txidTracker) change(ids []uint32) {
	if t.pending == nil {
		t.pending = map[uint32]struct{}{}
	}
	for _, id := range ids {
		t.pending[id] = struct{}{}
	}
}

// upToDate commits the pending txids.
func (t *txidTracker) upToDate() {
	if t.seen == nil {
		t.seen = map[uint32]struct{}{}
	}
	for id := range t.pending {
		if _, ok := t.seen[id]; !ok {
			t.seen[id] = struct{}{}
			t.order = append(t.order, id)
		}
		delete(t.pending, id)
	}
	for len(t.order) > maxSeenTxids {
		delete(t.seen, t.order[0])
		t.order = t.order[1:]
	}
}

// snapshot records a snapshot-end.
func (t *txidTracker) snapshot(se *SnapshotEnd) {
	t.snapshots = append(t.snapshots, se)
	if len(t.snapshots) > maxSnapshots {
		t.snapshots = t.snapshots[1:]
	}
}

// refetch drops pending txids: their changes were discarded.
func (t *txidTracker) refetch() { clear(t.pending) }

// visible reports whether the transaction xid is known to be in the shape.
func (t *txidTracker) visible(xid uint32) bool {
	if _, ok := t.seen[xid]; ok {
		return true
	}
	for _, se := range t.snapshots {
		if se.Visible(xid) {
			return true
		}
	}
	return false
}
