package shape

import (
	"testing"

	"github.com/voltsync/volt"
)

func TestControlMessages(t *testing.T) {
	if got := string(SnapshotEnd(volt.Snapshot{Xmin: 750, Xmax: 752, Xip: []uint64{750, 751}})); got != `{"headers":{"control":"snapshot-end","xmin":"750","xmax":"752","xip_list":["750","751"]}}` {
		t.Errorf("snapshot-end: %s", got)
	}
	if got := string(SnapshotEnd(volt.Snapshot{Xmin: 5, Xmax: 5})); got != `{"headers":{"control":"snapshot-end","xmin":"5","xmax":"5","xip_list":[]}}` {
		t.Errorf("empty snapshot-end: %s", got)
	}
	if got := string(UpToDate(23805808)); got != `{"headers":{"control":"up-to-date","global_last_seen_lsn":"23805808"}}` {
		t.Errorf("up-to-date: %s", got)
	}
	if got := string(SubsetMetadata(volt.Snapshot{Xmin: 1, Xmax: 3, Xip: []uint64{2}}, 7, 99)); got != `{"xmin":"1","xmax":"3","xip_list":["2"],"snapshot_mark":7,"database_lsn":"99"}` {
		t.Errorf("metadata: %s", got)
	}
}
