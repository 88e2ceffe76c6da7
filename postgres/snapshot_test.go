package postgres

import (
	"reflect"
	"testing"
)

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
