package shapelog

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/voltsync/volt"
)

// crashFixture is a closed log used as the template of crash scenarios.
type crashFixture struct {
	dir   string // the template log directory
	chunk int
	txs   []tx
	ends  []int64 // live.dat position after each transaction
	snap  *model  // the model of the snapshot part
	r     *rand.Rand
}

// newCrashFixture writes a complete snapshot and nTx random transactions,
// syncs and closes the log.
func newCrashFixture(t *testing.T, r *rand.Rand, chunk, nTx, maxSize int) *crashFixture {
	t.Helper()
	s := noFsync(newStore(t, chunk))
	l := mustCreate(t, s, "c")
	f := &crashFixture{dir: filepath.Join(s.dir, "c"), chunk: chunk, snap: &model{chunk: chunk}, r: r}
	for _, row := range []string{"s1", "s2"} {
		if err := l.AppendSnapshot([]byte(row)); err != nil {
			t.Fatal(err)
		}
		f.snap.appendSnapshot(row)
	}
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	f.snap.finish("END")
	var pos int64
	prev, id := volt.Offset{}, 0
	for i := 0; i < nTx; i++ {
		x := randTx(r, prev, &id, 4, maxSize)
		mustAppend(t, l, x)
		for _, e := range x {
			pos += int64(liveHdrSize + len(e.JSON))
		}
		f.txs, f.ends = append(f.txs, x), append(f.ends, pos)
		prev = x[len(x)-1].Offset
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// modelUpTo returns the model of the fixture keeping the transactions
// that end at or before position cut.
func (f *crashFixture) modelUpTo(cut int64) (*model, int64) {
	m := *f.snap
	m.live = nil
	var end int64
	for i, x := range f.txs {
		if f.ends[i] > cut {
			break
		}
		m.live, end = append(m.live, x...), f.ends[i]
	}
	return &m, end
}

// reopen copies the template into store s as handle "c", lets mutate damage
// the copy and opens it.
func (f *crashFixture) reopen(t *testing.T, s *Store, mutate func(dir string)) *Log {
	t.Helper()
	dir := filepath.Join(s.dir, "c")
	copyDir(t, f.dir, dir) // overwrites the previous copy in place (fast)
	mutate(dir)
	l, err := s.Open("c")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// verifyRecovered checks l against m, that live.dat was cut to wantSize,
// and that appending after recovery yields the same chunks as a log that
// never crashed.
func verifyRecovered(t *testing.T, l *Log, m *model, wantSize int64) {
	t.Helper()
	defer l.Close()
	if size, _ := fileSize(l.live); size != wantSize {
		t.Fatalf("live.dat recovered to %d bytes, want %d", size, wantSize)
	}
	checkAgainstModel(t, l, m)
	id := 1000
	x := randTx(rand.New(rand.NewSource(1)), m.latest(), &id, 4, 30)
	mustAppend(t, l, x)
	m.live = append(m.live, x...)
	checkAgainstModel(t, l, m)
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileLen(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestCrashTruncateLiveEveryByte cuts live.dat at every byte (including
// positions inside sealed, indexed chunks) and checks recovery to the last
// complete transaction.
func TestCrashTruncateLiveEveryByte(t *testing.T) {
	f := newCrashFixture(t, rand.New(rand.NewSource(testSeed(t))), 40, 14, 30)
	s := noFsync(newFastStore(t, 40))
	size := fileLen(t, filepath.Join(f.dir, liveFile))
	for cut := firstByte(f.r); cut <= size; cut += byteStep {
		l := f.reopen(t, s, func(dir string) { truncateFile(t, filepath.Join(dir, liveFile), cut) })
		m, end := f.modelUpTo(cut)
		verifyRecovered(t, l, m, end)
		if t.Failed() {
			t.Fatalf("cut at %d of %d", cut, size)
		}
	}
}

// TestCrashTruncateIndexEveryByte cuts live.idx at every byte: no data is
// lost and the boundaries are recomputed identically.
func TestCrashTruncateIndexEveryByte(t *testing.T) {
	f := newCrashFixture(t, rand.New(rand.NewSource(testSeed(t))), 40, 14, 30)
	s := noFsync(newFastStore(t, 40))
	size := fileLen(t, filepath.Join(f.dir, liveIdxFile))
	if size < 3*liveIdxSize {
		t.Fatalf("fixture has only %d index bytes", size)
	}
	m, end := f.modelUpTo(1 << 62)
	for cut := firstByte(f.r); cut <= size; cut += byteStep {
		l := f.reopen(t, s, func(dir string) { truncateFile(t, filepath.Join(dir, liveIdxFile), cut) })
		verifyRecovered(t, l, m, end)
		if t.Failed() {
			t.Fatalf("cut at %d of %d", cut, size)
		}
		m.live = f.flat()
	}
}

func (f *crashFixture) flat() []Entry {
	var out []Entry
	for _, x := range f.txs {
		out = append(out, x...)
	}
	return out
}

// TestCrashCorruptEveryByte flips each byte of an unindexed live.dat (one
// open chunk): recovery keeps exactly the transactions that end before the
// damaged record.
func TestCrashCorruptEveryByte(t *testing.T) {
	f := newCrashFixture(t, rand.New(rand.NewSource(testSeed(t))), 1<<20, 12, 30)
	s := noFsync(newFastStore(t, 1<<20))
	var starts []int64 // record start positions
	var pos int64
	for _, e := range f.flat() {
		starts = append(starts, pos)
		pos += int64(liveHdrSize + len(e.JSON))
	}
	rec := 0
	for p := firstByte(f.r); p < pos; p += byteStep {
		for rec+1 < len(starts) && starts[rec+1] <= p {
			rec++
		}
		l := f.reopen(t, s, func(dir string) { flipByte(t, filepath.Join(dir, liveFile), p) })
		m, end := f.modelUpTo(starts[rec])
		verifyRecovered(t, l, m, end)
		if t.Failed() {
			t.Fatalf("byte %d flipped", p)
		}
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := []byte{0}
	if _, err := fh.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestCrashCorruptLastIndexRecord damages each byte of the last index
// record: it is dropped and recomputed.
func TestCrashCorruptLastIndexRecord(t *testing.T) {
	f := newCrashFixture(t, rand.New(rand.NewSource(testSeed(t))), 40, 14, 30)
	s := noFsync(newFastStore(t, 40))
	size := fileLen(t, filepath.Join(f.dir, liveIdxFile))
	m, end := f.modelUpTo(1 << 62)
	for p := size - liveIdxSize; p < size; p++ {
		l := f.reopen(t, s, func(dir string) { flipByte(t, filepath.Join(dir, liveIdxFile), p) })
		verifyRecovered(t, l, m, end)
		m.live = f.flat()
		if t.Failed() {
			t.Fatalf("index byte %d flipped", p)
		}
	}
}

// TestCorruptSealedChunkIsReported: damage inside an indexed chunk is not
// scanned by Open but is reported by Read.
func TestCorruptSealedChunkIsReported(t *testing.T) {
	f := newCrashFixture(t, rand.New(rand.NewSource(1)), 40, 14, 30)
	s := newFastStore(t, 40)
	l := f.reopen(t, s, func(dir string) { flipByte(t, filepath.Join(dir, liveFile), 30) })
	defer l.Close()
	if _, err := l.Read(volt.SnapshotEnd); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read of a damaged chunk: %v, want ErrCorrupt", err)
	}
}

// TestCrashGarbageTail appends zeros, random bytes and a transaction
// without its last entry to live.dat: all of it is dropped.
func TestCrashGarbageTail(t *testing.T) {
	r := rand.New(rand.NewSource(testSeed(t)))
	f := newCrashFixture(t, r, 40, 10, 30)
	s := noFsync(newFastStore(t, 40))
	m, end := f.modelUpTo(1 << 62)
	last := m.latest()
	partial := appendLiveRecord(nil, off(last.LSN+5, 0), []byte("half"), false)
	partial = appendLiveRecord(partial, off(last.LSN+5, 2), []byte("of a tx"), false)
	random := make([]byte, 300)
	r.Read(random)
	for name, tail := range map[string][]byte{"zeros": make([]byte, 4096), "random": random, "partial-tx": partial} {
		l := f.reopen(t, s, func(dir string) { appendFile(t, filepath.Join(dir, liveFile), tail) })
		verifyRecovered(t, l, m, end)
		m.live = f.flat()
		if t.Failed() {
			t.Fatalf("tail %s", name)
		}
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(b); err != nil {
		t.Fatal(err)
	}
}
