package shapelog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OnChange fires whenever new content becomes readable, and not on Close.
func TestOnChange(t *testing.T) {
	s := newStore(t, 64)
	l := mustCreate(t, s, "h-1")
	calls := 0
	l.OnChange(func() { calls++ })
	if err := l.FinishSnapshot([]byte(`{"end":1}`)); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("FinishSnapshot: %d calls, want 1", calls)
	}
	mustAppend(t, l, tx{{off(1, 0), []byte(`{"a":1}`)}})
	if calls != 2 {
		t.Fatalf("Append: %d calls, want 2", calls)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("Close: %d calls, want still 2", calls)
	}
}

// With DeferSnapshotSync the finished snapshot is complete for readers at
// once, durable after SyncSnapshot (or Close), and complete after reopening.
func TestDeferSnapshotSync(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, Options{ChunkBytes: 64, DeferSnapshotSync: true})
	if err != nil {
		t.Fatal(err)
	}
	l := mustCreate(t, s, "h-1")
	if err := l.AppendSnapshot([]byte(`{"row":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.FinishSnapshot([]byte(`{"end":1}`)); err != nil {
		t.Fatal(err)
	}
	if !l.SnapshotComplete() || !l.sw.unsynced {
		t.Fatalf("complete %v, unsynced %v: want a complete, not yet synced snapshot", l.SnapshotComplete(), l.sw.unsynced)
	}
	if err := l.SyncSnapshot(); err != nil || l.sw.unsynced {
		t.Fatalf("SyncSnapshot: %v (unsynced %v)", err, l.sw.unsynced)
	}
	if err := s.SyncDir("h-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncRoot(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = s.Open("h-1")
	if err != nil {
		t.Fatal(err)
	}
	if !l.SnapshotComplete() {
		t.Fatal("snapshot not complete after reopening")
	}
	if _, err := os.Stat(dir + "/h-1/" + snapFile); err != nil {
		t.Fatal(err)
	}
}

// A reopened log that nobody appends to is closed without an fsync;
// Unsynced makes the next Sync fsync what Open found, and the directory
// (the live files' names may not be durable either).
func TestSyncAfterReopen(t *testing.T) {
	s := newStore(t, 64)
	l := mustCreate(t, s, "h-1")
	if err := l.FinishSnapshot([]byte(`{"end":1}`)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, tx{{off(1, 0), []byte(`{"a":1}`)}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var synced []string
	s.syncFile = func(f *os.File) error { synced = append(synced, f.Name()); return nil }

	l = mustOpen(t, s, "h-1")
	if err := l.Sync(); err != nil || len(synced) != 0 {
		t.Fatalf("Sync of an unchanged reopened log: %v, fsynced %v", err, synced)
	}
	l.Unsynced()
	if err := l.Sync(); err != nil || len(synced) != 2 || filepath.Base(synced[0]) != liveFile || synced[1] != l.dir {
		t.Fatalf("Sync after Unsynced: %v, fsynced %v; want live.dat, then the directory", err, synced)
	}
	synced = nil
	if err := l.Close(); err != nil || len(synced) != 0 {
		t.Fatalf("Close after the Sync: %v, fsynced %v", err, synced)
	}
}

// The live files are created by the first Append, not by Create: a log
// that never had live entries reopens without them (holding no files
// once its snapshot is complete), and a crash that left only one of
// them reopens with the other created empty.
func TestLiveFilesOnFirstAppend(t *testing.T) {
	s := newStore(t, 64)
	l := mustCreate(t, s, "h-1")
	if err := l.AppendSnapshot([]byte(`{"row":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.FinishSnapshot([]byte(`{"end":1}`)); err != nil {
		t.Fatal(err)
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(l.dir, name))
		return err == nil
	}
	if exists(liveFile) || exists(liveIdxFile) {
		t.Fatal("Create made the live files")
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync without live files: %v", err)
	}
	l.Close()
	l = mustOpen(t, s, "h-1")
	if l.live != nil || l.snap != nil || exists(liveFile) {
		t.Fatalf("reopened log without live entries: live %v, snapshot %v, live.dat on disk %v", l.live, l.snap, exists(liveFile))
	}
	if got := entriesOf(follow(t, l)); strings.Join(got, "|") != `{"row":1}|{"end":1}` {
		t.Fatalf("reopened log reads %q", got)
	}
	mustAppend(t, l, tx{{off(5, 0), []byte(`{"a":1}`)}})
	if !exists(liveFile) || !exists(liveIdxFile) || !l.liveNew.Load() {
		t.Fatalf("after the first Append: live.dat %v, live.idx %v, directory sync pending %v", exists(liveFile), exists(liveIdxFile), l.liveNew.Load())
	}
	if err := l.Sync(); err != nil || l.liveNew.Load() {
		t.Fatalf("Sync: %v (directory sync still pending: %v)", err, l.liveNew.Load())
	}
	l.Close()

	// A crash between creating live.dat and live.idx.
	if err := os.Remove(filepath.Join(s.Dir(), "h-1", liveIdxFile)); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, s, "h-1")
	if got := entriesOf(follow(t, l)); strings.Join(got, "|") != `{"row":1}|{"end":1}|{"a":1}` {
		t.Fatalf("reopened without live.idx, reads %q", got)
	}
	mustAppend(t, l, tx{{off(6, 0), []byte(`{"a":2}`)}})
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()

	// An owner that relies on entries a dead process wrote (Unsynced)
	// gets the directory synced too: their names may not be durable.
	l = mustOpen(t, s, "h-1")
	if l.liveNew.Load() {
		t.Fatal("a reopened log with both live files wants a directory sync")
	}
	l.Unsynced()
	if !l.liveNew.Load() {
		t.Fatal("Unsynced does not make the next Sync sync the directory")
	}
	if err := l.Sync(); err != nil || l.liveNew.Load() {
		t.Fatalf("Sync after Unsynced: %v (directory sync still pending: %v)", err, l.liveNew.Load())
	}
}
