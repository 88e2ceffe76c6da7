package shapelog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCreateInodes: a new log is its directory and the two snapshot
// files, nothing more (each inode is an allocation that creating many
// shapes pays for), and making it durable (SyncSnapshot, SyncDir) costs
// the two snapshot files' fsyncs and the directory's, once each: SyncDir
// does not fsync the snapshot index (for its header) again.
func TestCreateInodes(t *testing.T) {
	s := newStore(t, 1<<20)
	var synced []string
	s.syncFile = func(f *os.File) error { synced = append(synced, filepath.Base(f.Name())); return nil }
	l := mustCreate(t, s, "h")
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "h"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{snapFile, snapIdxFile}; !slices.Equal(names, want) {
		t.Fatalf("a new log's directory holds %q, want %q", names, want)
	}
	if len(synced) != 0 {
		t.Fatalf("Create fsynced %q, want nothing", synced)
	}
	s.opts.DeferSnapshotSync = true
	if err := l.AppendSnapshot([]byte(`{"row":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.FinishSnapshot([]byte(`{"end":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncDir("h"); err != nil {
		t.Fatal(err)
	}
	if want := []string{snapFile, snapIdxFile, "h"}; !slices.Equal(synced, want) {
		t.Fatalf("fsynced %q, want %q", synced, want)
	}
	// Closed (or not synced yet), the index is fsynced for its header.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	synced = nil
	if err := s.SyncDir("h"); err != nil {
		t.Fatal(err)
	}
	if want := []string{snapIdxFile, "h"}; !slices.Equal(synced, want) {
		t.Fatalf("SyncDir of a closed log fsynced %q, want %q", synced, want)
	}
	mustCreate(t, s, "u")
	synced = nil
	if err := s.SyncDir("u"); err != nil {
		t.Fatal(err)
	}
	if want := []string{snapIdxFile, "u"}; !slices.Equal(synced, want) {
		t.Fatalf("SyncDir of a log without a snapshot fsynced %q, want %q", synced, want)
	}
}

// TestOpenFirstLayout: a log written before the chunk threshold moved
// into the snapshot index's header (a format file, an index without a
// header) opens with its threshold, reads as written and takes new
// entries; a header torn by a crash makes the snapshot incomplete and
// is written again.
func TestOpenFirstLayout(t *testing.T) {
	s := newStore(t, 1<<20)
	l := mustCreate(t, s, "old")
	for _, row := range []string{"r1", "r2", "r3"} {
		if err := l.AppendSnapshot([]byte(row)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, tx{{off(5, 0), []byte("live1")}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewrite it in the first layout, with another threshold than the
	// store's (8 bytes: every later live entry of 5 bytes or more seals
	// a chunk).
	dir := filepath.Join(s.Dir(), "old")
	idx, err := os.ReadFile(filepath.Join(dir, snapIdxFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, snapIdxFile), idx[snapIdxSize:], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, formatFile), []byte(formatMagic+"\nchunk_bytes 8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := mustOpen(t, s, "old")
	if o.ChunkBytes() != 8 || !o.SnapshotComplete() {
		t.Fatalf("first layout: chunk bytes %d, snapshot complete %v; want 8 and true", o.ChunkBytes(), o.SnapshotComplete())
	}
	mustAppend(t, o, tx{{off(6, 0), []byte("live2")}})
	checkFollow(t, o, "r1|r2|r3|END|live1|live2")
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncDir("old"); err != nil {
		t.Fatalf("SyncDir of a first-layout log: %v", err)
	}

	// A new log whose header is torn: the snapshot is discarded and the
	// log is usable with the store's threshold.
	n := mustCreate(t, s, "torn")
	if err := n.AppendSnapshot([]byte("r1")); err != nil {
		t.Fatal(err)
	}
	if err := n.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	truncateFile(t, filepath.Join(s.Dir(), "torn", snapIdxFile), 7)
	r := mustOpen(t, s, "torn")
	if r.SnapshotComplete() || r.ChunkBytes() != 1<<20 {
		t.Fatalf("torn header: snapshot complete %v, chunk bytes %d; want false and %d", r.SnapshotComplete(), r.ChunkBytes(), 1<<20)
	}
	if err := r.AppendSnapshot([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := r.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	checkFollow(t, r, "again|END")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if c := mustOpen(t, s, "torn"); !c.SnapshotComplete() || c.ChunkBytes() != 1<<20 {
		t.Fatalf("reopened after the rewrite: snapshot complete %v, chunk bytes %d", c.SnapshotComplete(), c.ChunkBytes())
	}
}

// BenchmarkCreateLogs creates logs the way a burst of new shapes does, 16
// at a time: Create, 500 snapshot rows of 150 bytes, FinishSnapshot with
// its fsyncs deferred, then SyncSnapshot and SyncDir (the cache's flush),
// and reports the process CPU time per log (user and system: the file
// system's work is the point).
func BenchmarkCreateLogs(b *testing.B) {
	s, err := OpenStore(b.TempDir(), Options{DeferSnapshotSync: true})
	if err != nil {
		b.Fatal(err)
	}
	row := bytes.Repeat([]byte("x"), 150)
	var next atomic.Int64
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				h := fmt.Sprintf("h%d", i)
				l, err := s.Create(h)
				if err != nil {
					b.Error(err)
					return
				}
				for range 500 {
					if err := l.AppendSnapshot(row); err != nil {
						b.Error(err)
						return
					}
				}
				if err := l.FinishSnapshot([]byte(`{"end":1}`)); err != nil {
					b.Error(err)
				}
				if err := l.SyncSnapshot(); err != nil {
					b.Error(err)
				}
				if err := s.SyncDir(h); err != nil {
					b.Error(err)
				}
				if err := l.Close(); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.SyncRoot(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/log")
}
