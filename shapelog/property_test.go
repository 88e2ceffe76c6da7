package shapelog

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/testseed"
)

const defaultIters = 60

var (
	seedFlag  = flag.Int64("shapelog.seed", 0, "seed for the property tests (0: $VOLT_SEED, else time-based)")
	itersFlag = flag.Int("shapelog.iters", defaultIters, "iterations of the property test (a quarter with -short)")
)

func testSeed(t *testing.T) int64 {
	if *seedFlag != 0 {
		t.Logf("seed %d (from -shapelog.seed)", *seedFlag)
		return *seedFlag
	}
	return int64(testseed.Seed(t))
}

var chunkSizes = []int{1, 7, 40, 300, 5000, 40000}

// TestPropertyRandomLogs builds random logs and checks every read against
// the model, the chunk-size rules, and identical reads after a reopen and
// after further appends.
func TestPropertyRandomLogs(t *testing.T) {
	r := rand.New(rand.NewSource(testSeed(t)))
	for it := 0; it < *itersFlag; it++ {
		chunk := chunkSizes[r.Intn(len(chunkSizes))]
		name := fmt.Sprintf("it%d-chunk%d", it, chunk)
		if !t.Run(name, func(t *testing.T) { propertyIteration(t, r, chunk) }) {
			return
		}
	}
}

func propertyIteration(t *testing.T, r *rand.Rand, chunk int) {
	s := noFsync(newStore(t, chunk))
	l := mustCreate(t, s, "h")
	m := &model{chunk: chunk}
	id := 0
	nRows, nTx := r.Intn(60), r.Intn(40)
	maxSize := 1 + r.Intn(3000)
	finish := r.Intn(5) > 0
	for nRows > 0 || nTx > 0 {
		switch {
		case nRows > 0 && (nTx == 0 || r.Intn(2) == 0):
			nRows--
			id++
			row := randJSON(r, id, 1+r.Intn(maxSize))
			if err := l.AppendSnapshot([]byte(row)); err != nil {
				t.Fatal(err)
			}
			m.appendSnapshot(row)
		default:
			nTx--
			x := randTx(r, m.latest(), &id, 8, maxSize)
			mustAppend(t, l, x)
			m.live = append(m.live, x...)
			if r.Intn(4) == 0 {
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if finish {
		if err := l.FinishSnapshot([]byte("END")); err != nil {
			t.Fatal(err)
		}
		m.finish("END")
	}
	checkAgainstModel(t, l, m)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, s, "h")
	if !finish { // an unfinished snapshot is discarded on Open
		m.snapRows, m.sealedAt = nil, nil
	}
	checkAgainstModel(t, l, m)
	for i := r.Intn(10); i > 0; i-- {
		x := randTx(r, m.latest(), &id, 8, maxSize)
		mustAppend(t, l, x)
		m.live = append(m.live, x...)
	}
	checkAgainstModel(t, l, m)
}

// checkAgainstModel compares reads at every probe offset with the model,
// then follows the log from -1 (when the snapshot is complete).
func checkAgainstModel(t *testing.T, l *Log, m *model) {
	t.Helper()
	for _, o := range m.probeOffsets() {
		want, ok := m.read(o)
		got, err := l.Read(o)
		switch {
		case !ok && !isPending(err):
			t.Fatalf("Read(%v) = %v, %v; want ErrSnapshotPending", o, toPage(got), err)
		case ok && err != nil:
			t.Fatalf("Read(%v): %v", o, err)
		case ok && toPage(got) != want:
			t.Fatalf("Read(%v) = %v, want %v", o, toPage(got), want)
		}
		checkLocate(t, l, o, got, err)
	}
	checkFollowModel(t, l, m)
}

// checkFollowModel follows the log from -1 (if the snapshot is complete)
// and checks the entries and chunk sizes against the model.
func checkFollowModel(t *testing.T, l *Log, m *model) {
	t.Helper()
	if l.Latest() != m.latest() {
		t.Fatalf("Latest = %v, want %v", l.Latest(), m.latest())
	}
	if !m.finished {
		return
	}
	pages := follow(t, l)
	want := append(append([]string(nil), m.snapRows...), liveStrings(m.live)...)
	if got := entriesOf(pages); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("following from -1 yields %d entries, want %d", len(got), len(want))
	}
	checkChunkSizes(t, pages, m.chunk)
}

func liveStrings(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.JSON)
	}
	return out
}

// checkChunkSizes checks the threshold rule on the pages of a follow from
// -1: within a chunk every proper prefix stays below the threshold, and
// every sealed chunk reaches it. Snapshot rows count n+1, live entries n.
func checkChunkSizes(t *testing.T, pages []page, chunk int) {
	t.Helper()
	for i, p := range pages {
		if p.Entries == "" {
			continue
		}
		extra := 0
		o := mustOffset(t, p.End)
		snap := isSnapChunk(o)
		if snap {
			extra = 1
		}
		entries := strings.Split(p.Entries, "|")
		sum := 0
		for j, e := range entries {
			sum += len(e) + extra
			if j < len(entries)-1 && sum >= chunk {
				t.Fatalf("page %d (End %s): prefix of %d entries already has %d >= %d bytes", i, p.End, j+1, sum, chunk)
			}
		}
		lastSnap := snap && (i+1 == len(pages) || !isSnapChunk(mustOffset(t, pages[i+1].End)))
		if !p.AtHead && !lastSnap && sum < chunk {
			t.Fatalf("page %d (End %s): sealed chunk of %d bytes < %d", i, p.End, sum, chunk)
		}
	}
}

func isSnapChunk(o volt.Offset) bool { return o.InSnapshot() && o.Op != volt.OpInf }

// checkLocate checks that Locate and Each stream exactly what Read
// returned, with buffers small enough to split records and to force the
// path for records larger than the buffer.
func checkLocate(t *testing.T, l *Log, o volt.Offset, read ReadResult, readErr error) {
	t.Helper()
	p, err := l.Locate(o)
	if (err == nil) != (readErr == nil) || (err != nil && !errors.Is(err, readErr) && !errors.Is(readErr, err)) {
		t.Fatalf("Locate(%v) error %v, Read error %v", o, err, readErr)
	}
	if err != nil {
		return
	}
	if p.End != read.End || p.AtHead != read.AtHead {
		t.Fatalf("Locate(%v) = end %v head %v, Read = end %v head %v", o, p.End, p.AtHead, read.End, read.AtHead)
	}
	for _, size := range []int{40, 257, 64 << 10} {
		var got [][]byte
		if err := p.Each(make([]byte, size), func(b []byte) error { got = append(got, append([]byte(nil), b...)); return nil }); err != nil {
			t.Fatalf("Each(%v, buf %d): %v", o, size, err)
		}
		if len(got) != len(read.Entries) {
			t.Fatalf("Each(%v, buf %d): %d entries, Read %d", o, size, len(got), len(read.Entries))
		}
		for i := range got {
			if !bytes.Equal(got[i], read.Entries[i]) {
				t.Fatalf("Each(%v, buf %d): entry %d = %q, Read %q", o, size, i, got[i], read.Entries[i])
			}
		}
	}
}
