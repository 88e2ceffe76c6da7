package shapelog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voltsync/volt"
)

func TestStoreLifecycle(t *testing.T) {
	s := newStore(t, 10)
	a := mustCreate(t, s, "b-2")
	mustCreate(t, s, "a-1")
	if _, err := s.Create("a-1"); !errors.Is(err, ErrExists) {
		t.Errorf("second Create: %v, want ErrExists", err)
	}
	if _, err := s.Open("a-1"); !errors.Is(err, ErrInUse) {
		t.Errorf("Open of an open log: %v, want ErrInUse", err)
	}
	if _, err := s.Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing log: %v, want fs.ErrNotExist", err)
	}
	if got, ok := s.Get("b-2"); !ok || got != a {
		t.Error("Get does not return the open log")
	}
	if hs, err := s.List(); err != nil || strings.Join(hs, ",") != "a-1,b-2" {
		t.Errorf("List = %v, %v", hs, err)
	}
	mustAppend(t, a, tx{{off(1, 0), []byte(strings.Repeat("x", 100))}})
	if n, err := s.DiskUsage("b-2"); err != nil || n < 100+liveHdrSize {
		t.Errorf("DiskUsage = %d, %v", n, err)
	}
	if err := s.Delete("b-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(volt.BeforeAll); err != ErrClosed {
		t.Errorf("Read of a deleted log: %v, want ErrClosed", err)
	}
	if hs, _ := s.List(); strings.Join(hs, ",") != "a-1" {
		t.Errorf("List after Delete = %v", hs)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "b-2")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("files of a deleted log remain: %v", err)
	}
	b := mustCreate(t, s, "b-2")
	if b.Latest() != volt.SnapshotEnd {
		t.Errorf("recreated log is not empty: Latest = %v", b.Latest())
	}
}

func TestStoreRejectsBadNames(t *testing.T) {
	s := newStore(t, 10)
	for _, h := range []string{"", ".", "..", ".hidden", "a/b", "../x", "a b", strings.Repeat("x", 201)} {
		if _, err := s.Create(h); err == nil {
			t.Errorf("Create(%q) succeeded", h)
		}
	}
}

func TestStoreCleansLeftovers(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{".h.creating", ".g.deleting-123/g"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenStore(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if hs, _ := s.List(); len(hs) != 0 {
		t.Errorf("List = %v, want none", hs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("leftovers remain: %v", ents)
	}
}

// TestChunkBytesIsPerLog: the threshold recorded at Create wins over the
// options of the store that reopens the log.
func TestChunkBytesIsPerLog(t *testing.T) {
	dir := t.TempDir()
	s, _ := OpenStore(dir, Options{ChunkBytes: 10})
	l, err := s.Create("h")
	if err != nil {
		t.Fatal(err)
	}
	buildPagingFixture(t, l)
	l.Close()
	s2, _ := OpenStore(dir, Options{ChunkBytes: 1 << 20})
	l2 := mustOpen(t, s2, "h")
	if l2.ChunkBytes() != 10 {
		t.Fatalf("ChunkBytes = %d, want 10", l2.ChunkBytes())
	}
	checkPaging(t, l2)
	if l3 := mustCreate(t, s2, "new"); l3.ChunkBytes() != 1<<20 {
		t.Errorf("new log ChunkBytes = %d", l3.ChunkBytes())
	}
	s3, _ := OpenStore(t.TempDir(), Options{})
	if l4 := mustCreate(t, s3, "d"); l4.ChunkBytes() != DefaultChunkBytes {
		t.Errorf("default ChunkBytes = %d", l4.ChunkBytes())
	}
}
