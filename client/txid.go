package client

// Xid8 rebuilds the 64-bit transaction id of a 32-bit xid from a 64-bit
// reference xid (a snapshot's xmax): the xid8 nearest to ref with those low
// 32 bits. Postgres keeps every live xid within 2³¹ of the current one,
// so this is exact across wraparound of the 32-bit counter.
func Xid8(xid uint32, ref uint64) uint64 {
	x := int64(ref) + int64(int32(xid-uint32(ref)))
	if x < 0 { // before the first epoch: it can only be a future xid
		x += 1 << 32
	}
	return uint64(x)
}

// Visible reports whether the transaction with 32-bit id xid is visible
// in the snapshot: committed before it was taken (xid < xmin, or
// xid < xmax and not in progress).
func (se *SnapshotEnd) Visible(xid uint32) bool {
	x := Xid8(xid, se.Xmax)
	if x < se.Xmin {
		return true
	}
	if x >= se.Xmax {
		return false
	}
	for _, ip := range se.Xip {
		if ip == x {
			return false
		}
	}
	return true
}

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
