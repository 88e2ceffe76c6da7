package shapelog

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

// writtenRow is snapshot row i of the LocateWritten tests: 1 KB, distinct.
func writtenRow(i int) []byte {
	b := make([]byte, 1000)
	copy(b, fmt.Sprintf("row %06d ", i))
	for j := 11; j < len(b); j++ {
		b[j] = 'a' + byte((i+j)%26)
	}
	return b
}

// readWritten appends the entries of p to rows.
func readWritten(t *testing.T, p Page, rows []string) []string {
	t.Helper()
	err := p.Each(make([]byte, 4096), func(m []byte) error { rows = append(rows, string(m)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestLocateWrittenOpenChunk writes a snapshot step by step and reads its
// chunks with LocateWritten in between: the written part of the open
// chunk is readable before the chunk is sealed (and nothing of it before
// it is written to the file), the parts of a chunk put together are
// exactly the sealed chunk Read returns, and a chunk past the open one is
// pending.
func TestLocateWrittenOpenChunk(t *testing.T) {
	s := newStore(t, 300<<10) // ≈ 300 rows per chunk
	l := mustCreate(t, s, "h")
	next := 0
	write := func(n int) {
		for ; n > 0; n-- {
			if err := l.AppendSnapshot(writtenRow(next)); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	p, err := l.LocateWritten(volt.BeforeAll, 0)
	if err != nil || !p.Partial || p.Bytes != 0 {
		t.Fatalf("before any row: %+v, %v; want an empty partial page", p, err)
	}
	write(10) // buffered, not in the file yet
	if p, err = l.LocateWritten(volt.BeforeAll, 0); err != nil || p.Bytes != 0 {
		t.Fatalf("10 buffered rows: %d bytes, %v; want none readable", p.Bytes, err)
	}
	write(100) // past snapFlushBytes: written
	p, err = l.LocateWritten(volt.BeforeAll, 0)
	if err != nil || !p.Partial || p.Bytes == 0 || p.End != snapOff(0) {
		t.Fatalf("110 rows: %+v, %v; want a partial page of chunk 0", p, err)
	}
	if _, err := l.Locate(volt.BeforeAll); !isPending(err) {
		t.Fatalf("Locate of the open chunk: %v, want ErrSnapshotPending", err)
	}
	if _, err := l.LocateWritten(snapOff(0), 0); !isPending(err) {
		t.Fatalf("LocateWritten of chunk 1 while chunk 0 is open: %v, want ErrSnapshotPending", err)
	}
	chunk0 := readWritten(t, p, nil)
	if len(chunk0) == 0 || len(chunk0) > 110 || chunk0[0] != string(writtenRow(0)) {
		t.Fatalf("partial chunk 0: %d rows", len(chunk0))
	}
	from := p.Resume()
	write(400) // seals chunk 0, opens chunk 1
	p, err = l.LocateWritten(volt.BeforeAll, from)
	if err != nil || p.Partial {
		t.Fatalf("rest of chunk 0: %+v, %v; want the sealed rest", p, err)
	}
	chunk0 = readWritten(t, p, chunk0)
	sealed, err := l.Read(volt.BeforeAll)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(chunk0, stringsOf(sealed.Entries)) {
		t.Fatalf("chunk 0 in parts: %d rows; sealed: %d rows", len(chunk0), len(sealed.Entries))
	}
	// Chunk 1 from its start, in two parts around the end of the snapshot.
	p, err = l.LocateWritten(snapOff(0), 0)
	if err != nil || !p.Partial || p.End != snapOff(1) {
		t.Fatalf("chunk 1: %+v, %v", p, err)
	}
	chunk1 := readWritten(t, p, nil)
	from = p.Resume()
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	if p, err = l.LocateWritten(snapOff(0), from); err != nil || p.Partial {
		t.Fatalf("rest of chunk 1: %+v, %v", p, err)
	}
	chunk1 = readWritten(t, p, chunk1)
	sealed, err = l.Read(snapOff(0))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(chunk1, stringsOf(sealed.Entries)) || chunk1[len(chunk1)-1] != "END" {
		t.Fatalf("chunk 1 in parts: %d rows; sealed: %d rows", len(chunk1), len(sealed.Entries))
	}
	if len(chunk0)+len(chunk1) != next+1 {
		t.Fatalf("%d+%d messages, want %d rows and END", len(chunk0), len(chunk1), next)
	}
	if _, err := l.LocateWritten(snapOff(1), 0); !isPending(err) {
		t.Fatalf("LocateWritten past the last chunk: %v, want ErrSnapshotPending", err)
	}
}

func stringsOf(b [][]byte) []string {
	out := make([]string, len(b))
	for i, x := range b {
		out[i] = string(x)
	}
	return out
}

// TestLocateWrittenFollowsWriter follows a snapshot that another goroutine
// writes, the way a client's requests do (each chunk in parts, waiting for
// OnChange between them): it gets exactly the rows written, in order.
func TestLocateWrittenFollowsWriter(t *testing.T) {
	const rows = 2000
	s := newStore(t, 256<<10)
	l := mustCreate(t, s, "h")
	changed := watchChanges(l)
	errc := make(chan error, 1)
	go func() {
		for i := range rows {
			if err := l.AppendSnapshot(writtenRow(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- l.FinishSnapshot([]byte("END"))
	}()
	var got []string
	after, from := volt.BeforeAll, int64(0)
	for done := false; !done; {
		ch := changed()
		p, err := l.LocateWritten(after, from)
		switch {
		case isPending(err):
		case err != nil:
			t.Fatal(err)
		default:
			got = readWritten(t, p, got)
			from = p.Resume()
			if !p.Partial {
				after, from = p.End, 0
				done = len(got) > 0 && got[len(got)-1] == "END"
			}
			if p.Bytes > 0 || !p.Partial {
				continue
			}
		}
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("no change for 30 s after %d rows", len(got))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(got) != rows+1 {
		t.Fatalf("followed %d messages, want %d rows and END", len(got), rows)
	}
	for i := range rows {
		if got[i] != string(writtenRow(i)) {
			t.Fatalf("message %d is %.12q, want row %d", i, got[i], i)
		}
	}
}

// TestLocateWrittenAfterCrash: rows of an unfinished snapshot that were
// readable through LocateWritten before a kill -9 are gone after the
// restart; nothing of the snapshot is readable until a new one is
// written.
func TestLocateWrittenAfterCrash(t *testing.T) {
	s := newStore(t, 300<<10)
	l := mustCreate(t, s, "h")
	for i := range 500 {
		if err := l.AppendSnapshot(writtenRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := l.LocateWritten(snapOff(0), 0); err != nil || p.Bytes == 0 {
		t.Fatalf("chunk 1 before the crash: %+v, %v; want written rows", p, err)
	}
	crashed := newStore(t, 300<<10)
	copyDir(t, l.dir, filepath.Join(crashed.dir, "h")) // kill -9 now
	r := mustOpen(t, crashed, "h")
	for _, after := range []volt.Offset{volt.BeforeAll, snapOff(0)} {
		p, err := r.LocateWritten(after, 0)
		if after == volt.BeforeAll && (err != nil || p.Bytes != 0 || !p.Partial) {
			t.Fatalf("chunk 0 after the crash: %+v, %v; want nothing readable", p, err)
		}
		if after != volt.BeforeAll && !errors.Is(err, ErrSnapshotPending) {
			t.Fatalf("chunk 1 after the crash: %v, want ErrSnapshotPending", err)
		}
	}
}
