package shapelog

import (
	"testing"

	"github.com/voltsync/volt"
)

// buildPagingFixture writes, with a 10-byte threshold:
//
//	snapshot chunk 0: aaaa bbbb      (5+5 = 10 → sealed)
//	snapshot chunk 1: cc END         (FinishSnapshot)
//	live chunk 0: 100_0 x1234, 100_2 y1234          (10 JSON bytes, mid-tx)
//	live chunk 1: 100_4 z, 200_0 w12345678          (1+9 = 10)
//	open chunk:   300_0 q, 300_2 rr
func buildPagingFixture(t *testing.T, l *Log) {
	for _, row := range []string{"aaaa", "bbbb", "cc"} {
		if err := l.AppendSnapshot([]byte(row)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l,
		tx{{off(100, 0), []byte("x1234")}, {off(100, 2), []byte("y1234")}, {off(100, 4), []byte("z")}},
		tx{{off(200, 0), []byte("w12345678")}},
		tx{{off(300, 0), []byte("q")}, {off(300, 2), []byte("rr")}},
	)
}

var pagingCases = []struct {
	after string
	want  page
}{
	{"-1", page{"aaaa|bbbb", "0_0", false}},
	{"0_0", page{"cc|END", "0_1", false}},
	{"0_1", page{"x1234|y1234", "100_2", false}},
	{"0_inf", page{"x1234|y1234", "100_2", false}},
	{"0_7", page{"x1234|y1234", "100_2", false}}, // past the last chunk
	{"1_0", page{"x1234|y1234", "100_2", false}},
	{"99_5", page{"x1234|y1234", "100_2", false}}, // made-up smaller offset
	{"100_0", page{"y1234", "100_2", false}},
	{"100_1", page{"y1234", "100_2", false}}, // between entries
	{"100_2", page{"z|w12345678", "200_0", false}},
	{"100_3", page{"z|w12345678", "200_0", false}},
	{"100_inf", page{"w12345678", "200_0", false}},
	{"150_0", page{"w12345678", "200_0", false}},
	{"200_0", page{"q|rr", "300_2", true}},
	{"250_0", page{"q|rr", "300_2", true}},
	{"300_0", page{"rr", "300_2", true}},
	{"300_1", page{"rr", "300_2", true}},
	{"300_2", page{"", "300_2", true}},
	{"300_inf", page{"", "300_inf", true}},
	{"400_0", page{"", "400_0", true}},
}

func checkPaging(t *testing.T, l *Log) {
	t.Helper()
	for _, c := range pagingCases {
		r, err := l.Read(mustOffset(t, c.after))
		if err != nil {
			t.Errorf("Read(%s): %v", c.after, err)
			continue
		}
		if got := toPage(r); got != c.want {
			t.Errorf("Read(%s) = %v, want %v", c.after, got, c.want)
		}
	}
	if got := l.Latest().String(); got != "300_2" {
		t.Errorf("Latest = %s, want 300_2", got)
	}
	if got := l.LastTxLSN(); got != 300 {
		t.Errorf("LastTxLSN = %d, want 300", got)
	}
}

// TestPaging checks the paging table with chunks sealed in memory (before
// Sync), in the index file (after Sync) and after a reopen.
func TestPaging(t *testing.T) {
	s := newStore(t, 10)
	l := mustCreate(t, s, "h1")
	buildPagingFixture(t, l)
	t.Run("unsynced", func(t *testing.T) { checkPaging(t, l) })
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	t.Run("synced", func(t *testing.T) { checkPaging(t, l) })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, s, "h1")
	t.Run("reopened", func(t *testing.T) { checkPaging(t, l) })
	if !l.SnapshotComplete() {
		t.Error("SnapshotComplete = false after reopen")
	}
}

// TestPagingNoSyncReopen reopens a log that was closed without an explicit
// Sync: Close must have made everything durable and indexed.
func TestPagingNoSyncReopen(t *testing.T) {
	s := newStore(t, 10)
	l := mustCreate(t, s, "h")
	buildPagingFixture(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, s, "h")
	checkPaging(t, l)
	if l.idxRecs != 2 {
		t.Errorf("index records = %d, want 2", l.idxRecs)
	}
}

type readCase struct {
	after   string
	want    page
	pending bool
}

func runReadCases(t *testing.T, l *Log, cases []readCase) {
	t.Helper()
	for _, c := range cases {
		r, err := l.Read(mustOffset(t, c.after))
		switch {
		case c.pending:
			if !isPending(err) {
				t.Errorf("Read(%s) = %v, %v; want ErrSnapshotPending", c.after, toPage(r), err)
			}
		case err != nil:
			t.Errorf("Read(%s): %v", c.after, err)
		case toPage(r) != c.want:
			t.Errorf("Read(%s) = %v, want %v", c.after, toPage(r), c.want)
		}
	}
}

func TestPagingEmptyLog(t *testing.T) {
	l := mustCreate(t, newStore(t, 10), "empty")
	if l.Latest() != volt.SnapshotEnd || l.LastTxLSN() != 0 || l.SnapshotComplete() {
		t.Fatalf("fresh log: Latest=%v LastTxLSN=%d complete=%v", l.Latest(), l.LastTxLSN(), l.SnapshotComplete())
	}
	runReadCases(t, l, []readCase{
		{after: "-1", pending: true},
		{after: "0_0", pending: true},
		{after: "0_3", pending: true},
		{after: "0_inf", want: page{"", "0_inf", true}},
		{after: "5_0", want: page{"", "5_0", true}},
	})
}

func TestPagingEmptySnapshot(t *testing.T) {
	l := mustCreate(t, newStore(t, 10), "h")
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	runReadCases(t, l, []readCase{
		{after: "-1", want: page{"END", "0_0", false}},
		{after: "0_0", want: page{"", "0_inf", true}},
		{after: "0_inf", want: page{"", "0_inf", true}},
	})
	mustAppend(t, l, tx{{off(7, 0), []byte("a")}})
	runReadCases(t, l, []readCase{
		{after: "0_0", want: page{"a", "7_0", true}},
		{after: "0_inf", want: page{"a", "7_0", true}},
		{after: "7_0", want: page{"", "7_0", true}},
	})
}

func TestPagingSnapshotInProgress(t *testing.T) {
	l := mustCreate(t, newStore(t, 10), "h")
	changed := watchChanges(l)
	ch := changed()
	for _, row := range []string{"123456789", "ab"} { // 10 → sealed; "ab" open
		if err := l.AppendSnapshot([]byte(row)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-ch:
	default:
		t.Error("no change after a snapshot chunk was sealed")
	}
	mustAppend(t, l, tx{{off(5, 0), []byte("live")}})
	runReadCases(t, l, []readCase{
		{after: "-1", want: page{"123456789", "0_0", false}},
		{after: "0_0", pending: true},
		{after: "0_1", pending: true},
		{after: "0_inf", want: page{"live", "5_0", true}},
	})
	ch = changed()
	if err := l.FinishSnapshot([]byte("E")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Error("no change after FinishSnapshot")
	}
	runReadCases(t, l, []readCase{
		{after: "0_0", want: page{"ab|E", "0_1", false}},
		{after: "0_1", want: page{"live", "5_0", true}},
	})
	if err := l.AppendSnapshot([]byte("x")); err != ErrSnapshotDone {
		t.Errorf("AppendSnapshot after finish = %v, want ErrSnapshotDone", err)
	}
}

// TestPagingFinishAfterSeal: when the last row seals a chunk, snapshot-end
// goes alone into a new last chunk.
func TestPagingFinishAfterSeal(t *testing.T) {
	l := mustCreate(t, newStore(t, 10), "h")
	if err := l.AppendSnapshot([]byte("123456789")); err != nil {
		t.Fatal(err)
	}
	if err := l.FinishSnapshot([]byte("E")); err != nil {
		t.Fatal(err)
	}
	runReadCases(t, l, []readCase{
		{after: "-1", want: page{"123456789", "0_0", false}},
		{after: "0_0", want: page{"E", "0_1", false}},
		{after: "0_1", want: page{"", "0_inf", true}},
	})
}

func TestAppendRejectsBadOffsets(t *testing.T) {
	l := mustCreate(t, newStore(t, 10), "h")
	mustAppend(t, l, tx{{off(10, 2), []byte("a")}})
	bad := []tx{
		{{off(10, 2), []byte("dup")}},
		{{off(9, 0), []byte("older")}},
		{{off(11, 4), []byte("a")}, {off(11, 2), []byte("b")}},
		{{off(0, 3), []byte("snapshot offset")}},
		{{volt.Offset{LSN: 12, Op: volt.OpInf}, []byte("inf")}},
		{{volt.BeforeAll, []byte("-1")}},
	}
	for _, x := range bad {
		if err := l.Append(x...); err == nil {
			t.Errorf("Append(%v) succeeded", x[0].Offset)
		}
	}
	if got := l.Latest(); got != off(10, 2) {
		t.Errorf("Latest after rejected appends = %v", got)
	}
	if err := l.Append(); err != nil {
		t.Errorf("empty Append: %v", err)
	}
}
