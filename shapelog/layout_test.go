package shapelog

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCreateInodes: a new log is its directory and the two snapshot
// files, nothing more (each inode is an allocation that creating many
// shapes pays for), and making it durable (SyncSnapshot, SyncDir) costs
// the two snapshot files' fsyncs and the directory's, once each: the
// snapshot index, which SyncDir fsyncs for its header, is clean by then.
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
	if want := []string{snapFile, snapIdxFile, snapIdxFile, "h"}; !slices.Equal(synced, want) {
		t.Fatalf("fsynced %q, want %q", synced, want)
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
