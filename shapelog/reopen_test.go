package shapelog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestReopenTrustsACleanClose: a log closed cleanly is reopened from the
// state it held, opening only its live files (the format file, which Open
// reads first, is hidden meanwhile, so Open fails where Reopen must not);
// what the reopened log holds and appends is what Open finds afterwards;
// and a log whose state moved on to a later Log is not trusted again.
func TestReopenTrustsACleanClose(t *testing.T) {
	s := newStore(t, 64) // small chunks: some sealed, one open
	l, err := s.Create("h")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := l.AppendSnapshot([]byte(`{"snap":"row"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.FinishSnapshot([]byte(`{"headers":{"control":"snapshot-end"}}`)); err != nil {
		t.Fatal(err)
	}
	var n uint64
	appendTx := func(l *Log) {
		t.Helper()
		n++
		mustAppend(t, l, tx{{off(10*n, 0), []byte(`{"a":1}`)}, {off(10*n, 1), []byte(`{"a":2}`)}})
	}
	for i := 0; i < 6; i++ {
		appendTx(l)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	want := entriesOf(follow(t, l))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Open needs the snapshot index (its header holds the chunk
	// threshold); Reopen must do without it.
	idx := filepath.Join(s.Dir(), "h", snapIdxFile)
	hide := func() {
		t.Helper()
		if err := os.Rename(idx, idx+".hidden"); err != nil {
			t.Fatal(err)
		}
	}
	unhide := func() {
		t.Helper()
		if err := os.Rename(idx+".hidden", idx); err != nil {
			t.Fatal(err)
		}
	}
	hide()
	if _, err := s.Open("h"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open without the snapshot index: %v, want not exist", err)
	}
	r, err := s.Reopen(l)
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	unhide() // the reads below open the snapshot
	if _, err := s.Reopen(l); !errors.Is(err, ErrInUse) {
		t.Fatalf("Reopen while open: %v, want ErrInUse", err)
	}
	if got := entriesOf(follow(t, r)); !reflect.DeepEqual(got, want) {
		t.Fatalf("reopened log reads\n%q\nwant\n%q", got, want)
	}
	appendTx(r)
	appendTx(r)
	want = entriesOf(follow(t, r))
	latest := r.Latest()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// l's state is r's past: reopening l must not trust it (Open runs
	// and, without the snapshot index, fails).
	hide()
	if _, err := s.Reopen(l); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Reopen of a superseded log: %v, want Open's not exist", err)
	}
	r2, err := s.Reopen(r)
	if err != nil {
		t.Fatalf("second Reopen: %v", err)
	}
	appendTx(r2)
	want = append(want, `{"a":1}`, `{"a":2}`)
	latest.LSN, latest.Op = 10*n, 1
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}

	// What a full recovery finds is what the reopened logs wrote.
	unhide()
	o := mustOpen(t, s, "h")
	if got := entriesOf(follow(t, o)); !reflect.DeepEqual(got, want) {
		t.Fatalf("Open after reopens reads\n%q\nwant\n%q", got, want)
	}
	if o.Latest() != latest {
		t.Fatalf("Latest %v, want %v", o.Latest(), latest)
	}
}

// TestReopenFallsBackToOpen: a log closed before its snapshot completed,
// or never appended to, is reopened by Open (recovery), and one whose
// files were deleted fails as Open does.
func TestReopenFallsBackToOpen(t *testing.T) {
	s := newStore(t, 1<<20)
	l, err := s.Create("noLive")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishSnapshot([]byte(`{"headers":{"control":"snapshot-end"}}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.Dir(), "noLive", snapIdxFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reopen(l); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Reopen of a log without live files: %v, want Open's not exist", err)
	}

	g, err := s.Create("gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.FinishSnapshot([]byte(`{"headers":{"control":"snapshot-end"}}`)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, g, tx{{off(5, 0), []byte(`{}`)}})
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reopen(g); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Reopen of a deleted log: %v, want not exist", err)
	}
}
