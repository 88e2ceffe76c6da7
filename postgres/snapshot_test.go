package postgres

import (
	"reflect"
	"testing"
)

func TestSnapshotVisible(t *testing.T) {
	s := SnapshotInfo{Xmin: 100, Xmax: 105, Xip: []uint64{100, 103}}
	for xid, want := range map[uint32]bool{99: true, 100: false, 101: true, 102: true, 103: false, 104: true, 105: false, 200: false} {
		if got := s.Visible(xid); got != want {
			t.Errorf("Visible(%d) = %v, want %v", xid, got, want)
		}
	}
	// Across an epoch boundary the 32-bit xid is rebuilt relative to xmax.
	const epoch = uint64(1) << 32
	w := SnapshotInfo{Xmin: epoch - 5, Xmax: epoch + 3, Xip: []uint64{epoch + 1}}
	for xid, want := range map[uint32]bool{^uint32(0) - 10: true, ^uint32(0) - 2: true, 0: true, 1: false, 2: true, 3: false} {
		if got := w.Visible(xid); got != want {
			t.Errorf("wrapped Visible(%d) = %v, want %v", xid, got, want)
		}
	}
}

func TestParseSnapshot(t *testing.T) {
	s, err := parseSnapshot("750:752:750,751")
	if err != nil || s.Xmin != 750 || s.Xmax != 752 || !reflect.DeepEqual(s.Xip, []uint64{750, 751}) {
		t.Fatalf("got %+v, %v", s, err)
	}
	if s, err := parseSnapshot("5:5:"); err != nil || len(s.Xip) != 0 {
		t.Fatalf("empty xip: %+v, %v", s, err)
	}
	for _, bad := range []string{"", "1:2", "a:2:", "1:2:x"} {
		if _, err := parseSnapshot(bad); err == nil {
			t.Errorf("parseSnapshot(%q) accepted", bad)
		}
	}
}
