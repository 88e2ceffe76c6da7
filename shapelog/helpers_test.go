package shapelog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/voltsync/volt"
)

// off builds a real offset.
func off(lsn, op uint64) volt.Offset { return volt.Offset{LSN: lsn, Op: op} }

// snapOff builds the virtual offset 0_k.
func snapOff(k uint64) volt.Offset { return volt.Offset{LSN: 0, Op: k} }

func mustOffset(t testing.TB, s string) volt.Offset {
	t.Helper()
	o, err := volt.ParseOffset(s)
	if err != nil {
		t.Fatalf("ParseOffset(%q): %v", s, err)
	}
	return o
}

func newStore(t testing.TB, chunk int) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir(), Options{ChunkBytes: chunk})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t testing.TB, s *Store, handle string) *Log {
	t.Helper()
	l, err := s.Create(handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustOpen(t testing.TB, s *Store, handle string) *Log {
	t.Helper()
	l, err := s.Open(handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// tx is one transaction for the tests.
type tx []Entry

func mustAppend(t testing.TB, l *Log, txs ...tx) {
	t.Helper()
	for _, x := range txs {
		if err := l.Append(x...); err != nil {
			t.Fatal(err)
		}
	}
}

// page is one Read result in comparable form.
type page struct {
	Entries string // entries joined with "|"
	End     string
	AtHead  bool
}

func (p page) String() string { return fmt.Sprintf("{%q %s %v}", p.Entries, p.End, p.AtHead) }

func toPage(r ReadResult) page {
	s := make([]string, len(r.Entries))
	for i, e := range r.Entries {
		s[i] = string(e)
	}
	return page{Entries: strings.Join(s, "|"), End: r.End.String(), AtHead: r.AtHead}
}

// follow reads from -1, following End until AtHead, and returns the pages.
func follow(t testing.TB, l *Log) []page {
	t.Helper()
	var pages []page
	at := volt.BeforeAll
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("follow: no progress")
		}
		r, err := l.Read(at)
		if err != nil {
			t.Fatalf("Read(%v): %v", at, err)
		}
		pages = append(pages, toPage(r))
		if r.AtHead {
			return pages
		}
		at = r.End
	}
}

// entriesOf flattens the entries of pages.
func entriesOf(pages []page) []string {
	var out []string
	for _, p := range pages {
		if p.Entries != "" {
			out = append(out, strings.Split(p.Entries, "|")...)
		}
	}
	return out
}

func isPending(err error) bool { return errors.Is(err, ErrSnapshotPending) }

// copyDir copies a log directory (as a crashed process would leave it: the
// page cache survives a kill -9), overwriting files that exist in dst.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// noFsync makes s skip fsyncs and returns it. Tests that simulate a crash
// by editing the files see the page cache either way, so flushing it to
// the disk only makes them slow on a busy machine.
func noFsync(s *Store) *Store {
	s.syncFile = func(*os.File) error { return nil }
	return s
}

// newFastStore is newStore in a tmpfs directory when one is available: the
// every-byte crash tests rewrite the files thousands of times, which a
// disk file system turns into writeback.
func newFastStore(t testing.TB, chunk int) *Store {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "shapelog-test-*")
	if err != nil {
		return newStore(t, chunk)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := OpenStore(dir, Options{ChunkBytes: chunk})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// watchChanges registers l's OnChange callback and returns a function that
// gives a channel the next change closes: take it before reading to miss
// no change.
func watchChanges(l *Log) func() <-chan struct{} {
	var mu sync.Mutex
	ch := make(chan struct{})
	l.OnChange(func() {
		mu.Lock()
		close(ch)
		ch = make(chan struct{})
		mu.Unlock()
	})
	return func() <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		return ch
	}
}
