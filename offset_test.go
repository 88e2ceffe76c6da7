package volt

import (
	"testing"
	"testing/quick"
)

func TestParseOffset(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Offset
	}{
		{"-1", BeforeAll},
		{"0_0", Offset{}},
		{"0_inf", SnapshotEnd},
		{"23805808_4", Offset{LSN: 23805808, Op: 4}},
		{"18446744073709551615_2", Offset{LSN: 18446744073709551615, Op: 2}},
	} {
		got, err := ParseOffset(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseOffset(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("round trip %q → %q", tc.in, got.String())
		}
	}
	for _, bad := range []string{"", "10", "1_2_3", "0_-1", "1_2 ", " 1_2", "1.5_2", "now", "_1", "1_", "a_b", "-2", "1_infinity", "18446744073709551616_0", "1_18446744073709551615"} {
		if _, err := ParseOffset(bad); err == nil {
			t.Errorf("ParseOffset(%q) accepted", bad)
		}
	}
}

func TestOffsetOrder(t *testing.T) {
	order := []string{"-1", "0_0", "0_7", "0_inf", "5_0", "5_2", "5_inf", "6_0"}
	for i := range order {
		for j := range order {
			a, _ := ParseOffset(order[i])
			b, _ := ParseOffset(order[j])
			want := cmpUint(uint64(i), uint64(j))
			if got := a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestOffsetRoundTripProperty(t *testing.T) {
	f := func(lsn, op uint64) bool {
		if op == OpInf {
			op--
		}
		o := Offset{LSN: lsn, Op: op}
		p, err := ParseOffset(o.String())
		return err == nil && p == o
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseOffset(f *testing.F) {
	for _, s := range []string{"-1", "0_0", "0_inf", "12_4", "1_2_3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOffset(s)
		if err != nil {
			return
		}
		p, err := ParseOffset(o.String())
		if err != nil || p != o {
			t.Fatalf("accepted %q as %v, which does not round-trip (%v, %v)", s, o, p, err)
		}
	})
}
