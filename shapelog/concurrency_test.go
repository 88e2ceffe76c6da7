package shapelog

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

// TestConcurrentWritersAndReaders runs a snapshot writer, a live writer, a
// separate syncer and several readers that follow offsets with long
// polling. Every reader must see every entry exactly once, in order.
// Run with -race.
func TestConcurrentWritersAndReaders(t *testing.T) {
	r := rand.New(rand.NewSource(testSeed(t)))
	l := mustCreate(t, newStore(t, 300), "h")
	var rows []string
	for i := 0; i < 400; i++ {
		rows = append(rows, randJSON(r, i, 1+r.Intn(120)))
	}
	rows = append(rows, "END")
	var live []tx
	prev, id := volt.Offset{}, 1000
	for i := 0; i < 300; i++ {
		x := randTx(r, prev, &id, 6, 150)
		live, prev = append(live, x), x[len(x)-1].Offset
	}
	want := append(append([]string(nil), rows...), liveStrings(flatten(live))...)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	done := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); errs <- writeSnapshotSlowly(l, rows) }()
	go func() { defer wg.Done(); errs <- writeLiveSlowly(l, live) }()
	go syncUntil(l, done)
	changed := watchChanges(l)
	results := make([][]string, 5)
	var rwg sync.WaitGroup
	for i := range results {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			got, err := followLive(l, changed, volt.BeforeAll, len(want))
			results[i] = got
			if err != nil {
				errs <- fmt.Errorf("reader %d: %w", i, err)
			}
		}()
	}
	tailWant := liveStrings(flatten(live))
	var tail []string
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		var err error
		if tail, err = followLive(l, changed, volt.SnapshotEnd, len(tailWant)); err != nil {
			errs <- fmt.Errorf("tail reader: %w", err)
		}
	}()
	wg.Wait()
	rwg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i, got := range results {
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("reader %d saw %d entries, want %d (or a different order)", i, len(got), len(want))
		}
	}
	if strings.Join(tail, "\n") != strings.Join(tailWant, "\n") {
		t.Errorf("tail reader saw %d entries, want %d", len(tail), len(tailWant))
	}
}

func flatten(txs []tx) []Entry {
	var out []Entry
	for _, x := range txs {
		out = append(out, x...)
	}
	return out
}

func writeSnapshotSlowly(l *Log, rows []string) error {
	for i, row := range rows[:len(rows)-1] {
		if err := l.AppendSnapshot([]byte(row)); err != nil {
			return err
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return l.FinishSnapshot([]byte(rows[len(rows)-1]))
}

func writeLiveSlowly(l *Log, txs []tx) error {
	for i, x := range txs {
		if err := l.Append(x...); err != nil {
			return err
		}
		if i%10 == 0 {
			if err := l.Sync(); err != nil {
				return err
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return l.Sync()
}

func syncUntil(l *Log, done chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-time.After(500 * time.Microsecond):
			l.Sync()
		}
	}
}

// followLive reads from `from`, following End and waiting for changes
// (see watchChanges), until it has n entries.
func followLive(l *Log, changed func() <-chan struct{}, from volt.Offset, n int) ([]string, error) {
	var got []string
	timeout := time.After(60 * time.Second)
	for at := from; len(got) < n; {
		ch := changed()
		r, err := l.Read(at)
		if err != nil && !isPending(err) {
			return got, err
		}
		for _, e := range r.Entries {
			got = append(got, string(e))
		}
		if err == nil {
			at = r.End
		}
		if (isPending(err) || r.AtHead) && len(got) < n {
			select {
			case <-ch:
			case <-timeout:
				return got, fmt.Errorf("stuck at %v with %d/%d entries", at, len(got), n)
			}
		}
	}
	return got, nil
}

// TestClosedLogRefuses: Read and Append after Close return ErrClosed.
func TestClosedLogRefuses(t *testing.T) {
	l := mustCreate(t, newStore(t, 100), "h")
	mustAppend(t, l, tx{{off(1, 0), []byte("a")}})
	l.Close()
	if _, err := l.Read(volt.BeforeAll); err != ErrClosed {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if err := l.Append(Entry{off(2, 0), []byte("b")}); err != ErrClosed {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
}

// TestSyncErrorIsSticky: after a failed fsync the log refuses writes (the
// state of the page cache is unknown) until it is reopened.
func TestSyncErrorIsSticky(t *testing.T) {
	s := newStore(t, 100)
	l := mustCreate(t, s, "h")
	mustAppend(t, l, tx{{off(1, 0), []byte("a")}})
	s.syncFile = func(*os.File) error { return errors.New("EIO") }
	err := l.Sync()
	s.syncFile = nil
	if err == nil {
		t.Fatal("Sync succeeded with a failing fsync")
	}
	if err := l.Append(Entry{off(2, 0), []byte("b")}); err == nil {
		t.Error("Append after a failed Sync succeeded")
	}
	if err := l.Sync(); err == nil {
		t.Error("second Sync after a failure succeeded")
	}
	l.Close()
	l = mustOpen(t, s, "h")
	mustAppend(t, l, tx{{off(2, 0), []byte("b")}})
	checkFollowEntries(t, l, volt.SnapshotEnd, "a|b")
}

func checkFollowEntries(t *testing.T, l *Log, from volt.Offset, want string) {
	t.Helper()
	got, err := followLive(l, watchChanges(l), from, len(strings.Split(want, "|")))
	if err != nil || strings.Join(got, "|") != want {
		t.Errorf("entries from %v = %q, %v; want %q", from, got, err, want)
	}
}
