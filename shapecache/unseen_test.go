package shapecache

import (
	"testing"

	"github.com/voltsync/volt"
)

// commitLog.unseen looks at the latest commits at or before the routed
// LSN: one that a snapshot does not hold (in progress for it, or at or
// past its xmax) is unseen; later commits are not its concern.
func TestCommitLogUnseen(t *testing.T) {
	l := newCommitLog()
	for xid := uint32(100); xid < 200; xid++ {
		l.note(xid, uint64(xid)*10) // commit order = xid order here
	}
	all := volt.Snapshot{Xmin: 200, Xmax: 200}
	cases := []struct {
		name   string
		snap   volt.Snapshot
		routed uint64
		want   bool
	}{
		{"every commit visible", all, 1990, false},
		{"a routed commit in progress for the snapshot", volt.Snapshot{Xmin: 150, Xmax: 200, Xip: []uint64{150}}, 1990, true},
		{"a routed commit at xmax", volt.Snapshot{Xmin: 199, Xmax: 199}, 1990, true},
		{"the invisible commit came after routed", volt.Snapshot{Xmin: 199, Xmax: 199}, 1980, false},
	}
	for _, c := range cases {
		if got := l.unseen(c.snap, c.routed); got != c.want {
			t.Errorf("%s: unseen = %v, want %v", c.name, got, c.want)
		}
	}
	// Past the ring's wrap the newest entries are still the ones checked.
	for xid := uint32(200); xid < 200+commitLogSize; xid++ {
		l.note(xid, uint64(xid)*10)
	}
	last := uint64(200 + commitLogSize - 1)
	if !l.unseen(volt.Snapshot{Xmin: last, Xmax: last}, last*10) {
		t.Error("after the wrap: the newest commit, at xmax, is not unseen")
	}
	if l.unseen(volt.Snapshot{Xmin: last + 1, Xmax: last + 1}, last*10) {
		t.Error("after the wrap: a snapshot holding every commit has one unseen")
	}
}
