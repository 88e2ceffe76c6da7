package volt

import (
	"reflect"
	"testing"
)

func TestSnapshotVisible(t *testing.T) {
	s := Snapshot{Xmin: 100, Xmax: 105, Xip: []uint64{100, 103}}
	for xid, want := range map[uint32]bool{
		99:  true,  // < xmin
		100: false, // = xmin, in progress
		101: true,  // between, committed
		102: true,
		103: false, // in progress
		104: true,
		105: false, // = xmax
		200: false, // later
	} {
		if got := s.Visible(xid); got != want {
			t.Errorf("Visible(%d) = %v, want %v", xid, got, want)
		}
	}
	// Across an epoch boundary the 32-bit xid is rebuilt relative to xmax.
	const epoch = uint64(1) << 32
	w := Snapshot{Xmin: epoch - 5, Xmax: epoch + 3, Xip: []uint64{epoch + 1}}
	for xid, want := range map[uint32]bool{^uint32(0) - 10: true, ^uint32(0) - 2: true, 0: true, 1: false, 2: true, 3: false} {
		if got := w.Visible(xid); got != want {
			t.Errorf("wrapped Visible(%d) = %v, want %v", xid, got, want)
		}
	}
	// A snapshot taken just after the 32-bit counter wrapped (epoch 1).
	se := Snapshot{Xmin: epoch + 5, Xmax: epoch + 10, Xip: []uint64{epoch + 7}}
	for xid, want := range map[uint32]bool{
		4294967290: true,  // committed in epoch 0
		3:          true,  // < xmin
		5:          true,  // = xmin, not in progress
		7:          false, // in progress
		8:          true,
		10:         false, // = xmax
		12:         false, // later
	} {
		if got := se.Visible(xid); got != want {
			t.Errorf("epoch-1 snapshot: Visible(%d) = %v, want %v", xid, got, want)
		}
	}
	// Just before the wrap: xid 2 belongs to the next epoch and is not
	// visible, although 2 < xmin as 32-bit numbers.
	se = Snapshot{Xmin: epoch - 20, Xmax: epoch - 10}
	if se.Visible(2) || !se.Visible(uint32(epoch-30)) || !se.Visible(uint32(epoch-15)) {
		t.Error("visibility across the wrap")
	}
}

func TestXid8(t *testing.T) {
	const e = 1 << 32
	tests := []struct {
		xid  uint32
		ref  uint64
		want uint64
	}{
		{100, 105, 100},
		{110, 105, 110},                    // a later xid of the same epoch
		{4294967290, e + 10, 4294967290},   // before the wrap
		{3, e + 10, e + 3},                 // after it
		{3, e - 5, e + 3},                  // xmax before the wrap, xid after: future
		{4294967290, 10, 4294967290},       // epoch 0 cannot go back: future
		{5, 3*e + 1<<31 + 10, 3*e + e + 5}, // more than 2³¹ behind is ahead
	}
	for _, tt := range tests {
		if got := Xid8(tt.xid, tt.ref); got != tt.want {
			t.Errorf("Xid8(%d, %d) = %d, want %d", tt.xid, tt.ref, got, tt.want)
		}
	}
}

func TestSnapshotJSON(t *testing.T) {
	s := Snapshot{Xmin: 750, Xmax: 752, Xip: []uint64{750, 751}}
	if got := string(s.AppendJSON(nil)); got != `"xmin":"750","xmax":"752","xip_list":["750","751"]` {
		t.Errorf("AppendJSON: %s", got)
	}
	if got := string(Snapshot{Xmin: 5, Xmax: 5}.AppendJSON(nil)); got != `"xmin":"5","xmax":"5","xip_list":[]` {
		t.Errorf("empty AppendJSON: %s", got)
	}
	back, err := ParseSnapshot("750", "752", []string{"750", "751"})
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("ParseSnapshot = %+v, %v", back, err)
	}
	for _, bad := range [][3]string{{"x", "1", ""}, {"1", "-2", ""}, {"1", "2", "1.5"}} {
		var xip []string
		if bad[2] != "" {
			xip = []string{bad[2]}
		}
		if _, err := ParseSnapshot(bad[0], bad[1], xip); err == nil {
			t.Errorf("ParseSnapshot(%q) accepted", bad)
		}
	}
}
