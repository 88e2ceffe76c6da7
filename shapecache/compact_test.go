package shapecache

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// A 1-row shape updated 100 times, one change at a time, is compacted
// every 31 or so changes (the MinOps floor, 32 messages), not on every
// write, while the quiet trigger is held off.
func TestCompactionFloorBoundsSmallShapes(t *testing.T) {
	url := pgtest.NewDB(t)
	logs := &syncBuffer{}
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.Compaction = Compaction{Quiet: time.Hour, Grace: time.Hour}
	})
	h.exec(itemsDDL)
	h.insertOwners(1, 0)
	old := h.newShape("")
	const updates = 100
	for i := 1; i <= updates; i++ {
		h.exec(fmt.Sprintf("UPDATE items SET title = 'v%d' WHERE id = 0", i))
		// The log read keeps receiving changes until a third compaction
		// removes it (two retired generations are kept); then the reader
		// moves to the current log.
		want := fmt.Sprintf("v%d", i)
		for {
			if old.IsGone() {
				old = h.newShape("")
			}
			gone := false
			waitFor(t, old, "update "+want, func() bool {
				title, err := lastTitle(old)
				if errors.Is(err, ErrShapeGone) {
					gone = true
					return true
				}
				if err != nil {
					t.Fatal(err)
				}
				return title == want
			})
			if !gone {
				break
			}
		}
	}
	// The current shape ends with the last update and fewer messages
	// than the floor (a compaction may still be finishing).
	var msgs []message
	if err := poll(func() bool {
		cur, err := h.getShape("")
		if err != nil {
			t.Fatal(err)
		}
		<-cur.Ready()
		msgs = readAll(t, cur)
		return len(msgs) < DefaultCompactMinOps && len(msgs) > 0 && msgs[len(msgs)-1].Value["title"] == fmt.Sprintf("v%d", updates)
	}); err != nil {
		t.Fatalf("the current log holds %d messages, want fewer than %d ending with the last update", len(msgs), DefaultCompactMinOps)
	}
	n := strings.Count(logs.String(), "shape compacted")
	if n < 1 || n > updates/(DefaultCompactMinOps-2)+1 {
		t.Fatalf("%d compactions for %d single-change transactions, want 1 to %d", n, updates, updates/(DefaultCompactMinOps-2)+1)
	}
	t.Logf("%d compactions for %d updates", n, updates)
}

// Shapes whose logs are over twice their rows but under the floor are
// compacted once quiet, one at a time, every one of them: a new client
// then downloads their rows only.
func TestCompactionOfQuietSmallShapes(t *testing.T) {
	url := pgtest.NewDB(t)
	logs := &syncBuffer{}
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.Compaction = Compaction{Quiet: 200 * time.Millisecond, Grace: time.Hour}
	})
	h.exec(itemsDDL)
	const shapes = 5
	h.insertOwners(shapes, 0)
	var olds []*Entry
	for k := range shapes {
		olds = append(olds, h.newShape(fmt.Sprintf("owner_id = %d", k)))
	}
	// Every shape's row, three times in one transaction: a quiet moment
	// between separate statements (a loaded machine makes them) would
	// compact a shape twice.
	h.exec("UPDATE items SET title = 'v1'; UPDATE items SET title = 'v2'; UPDATE items SET title = 'v3'")
	for k, old := range olds {
		where := fmt.Sprintf("owner_id = %d", k)
		var cur *Entry
		// The successor shows in the cache's lookup only: poll it.
		if err := poll(func() bool {
			e, err := h.getShape(where)
			if err != nil {
				t.Fatal(err)
			}
			cur = e
			return e != old
		}); err != nil {
			t.Fatalf("shape %s was not compacted", where)
		}
		<-cur.Ready()
		msgs := readAll(t, cur)
		if len(msgs) != 1 || msgs[0].Value["title"] != "v3" {
			t.Fatalf("shape %s after compaction: %v", where, msgs)
		}
	}
	if n := strings.Count(logs.String(), "shape compacted"); n != shapes {
		t.Fatalf("%d compactions for %d quiet shapes", n, shapes)
	}
}

// compactOnce updates the 1-row shape's row n times in one transaction
// and then to title, in one transaction (over the MinOps floor: one
// compaction, the successor holds the row)
// and returns the shape's successor of prev.
func compactOnce(t *testing.T, h *harness, prev *Entry, n int, title string) *Entry {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "UPDATE items SET title = '%s-%d' WHERE id = 0;", title, i)
	}
	fmt.Fprintf(&b, "UPDATE items SET title = '%s' WHERE id = 0;", title)
	h.exec(b.String())
	var cur *Entry
	if err := poll(func() bool {
		e, err := h.getShape("")
		if err != nil {
			t.Fatal(err)
		}
		cur = e
		return e != prev
	}); err != nil {
		t.Fatalf("shape not compacted after %q", title)
	}
	<-cur.Ready()
	return cur
}

// A client long-polling a compacted log (parked longer than Grace while
// nothing changes) keeps it: the log is compacted four times over many
// Graces, yet it keeps receiving the changes and never goes away while
// read; the intermediate logs nobody reads are removed after Grace. Once
// the client stops, its log is removed Grace after its last read.
//
// Before, a replaced log was removed a fixed Grace after compaction.
func TestRetiredLogServesItsReaders(t *testing.T) {
	const grace = 300 * time.Millisecond
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		c.Compaction = Compaction{Quiet: time.Hour, Grace: grace}
	})
	h.exec(itemsDDL)
	h.insertOwners(1, 0)
	old := h.newShape("")

	// The client: reads to the head, then waits for a change up to 1 s (a
	// long-poll of 1 s, over Grace), until stopped.
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		o := volt.BeforeAll
		for {
			ch := old.Changed()
			res, err := old.Read(o)
			if err != nil {
				done <- err
				return
			}
			o = res.End
			if !res.AtHead {
				continue
			}
			select {
			case <-ch:
			case <-time.After(time.Second):
			case <-stop:
				done <- nil
				return
			}
		}
	}()

	prev := old
	for round := 1; round <= 4; round++ {
		cur := compactOnce(t, h, prev, 40, fmt.Sprintf("r%d", round))
		if prev != old {
			// Nobody reads the intermediate log: removed after Grace.
			waitGone(t, prev, "an unread retired log was not removed")
		}
		prev = cur
		// Let Grace pass with nothing changing: only the parked client
		// keeps the first log.
		time.Sleep(2 * grace)
		if old.IsGone() {
			t.Fatalf("round %d: the log a client is reading was removed", round)
		}
	}
	if got := rows(t, old)[`"public"."items"/"0"`]["title"]; got != "r4" {
		t.Fatalf("the first log ends with title %q, want r4", got)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the client's read failed: %v", err)
	}
	stopped := time.Now()
	waitGone(t, old, "the retired log was not removed once its client left")
	if d := time.Since(stopped); d < grace-50*time.Millisecond {
		t.Fatalf("removed %v after its last read, want at least Grace (%v)", d, grace)
	}
	if cur, _ := h.getShape(""); cur != prev {
		t.Fatalf("current shape %s, want %s", cur.Handle, prev.Handle)
	}
}

// At most two retired generations of a shape are kept: the third
// compaction removes the oldest retired log at once, however recently it
// was read.
func TestRetiredGenerationsBound(t *testing.T) {
	url := pgtest.NewDB(t)
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		c.Compaction = Compaction{Quiet: time.Hour, Grace: time.Hour}
	})
	h.exec(itemsDDL)
	h.insertOwners(1, 0)
	gens := []*Entry{h.newShape("")}
	for round := 1; round <= 3; round++ {
		gens = append(gens, compactOnce(t, h, gens[len(gens)-1], 40, fmt.Sprintf("r%d", round)))
	}
	waitGone(t, gens[0], "the third compaction kept the oldest retired log")
	for i, e := range gens[1:] {
		if e.IsGone() {
			t.Fatalf("generation %d removed", i+1)
		}
	}
	if got := rows(t, gens[1])[`"public"."items"/"0"`]["title"]; got != "r3" {
		t.Fatalf("a kept retired log ends with title %q, want r3", got)
	}
}

// lastTitle returns the last title e's log gives its row, or why it
// cannot be read.
func lastTitle(e *Entry) (string, error) {
	var title string
	for o := volt.BeforeAll; ; {
		res, err := e.Read(o)
		if err != nil {
			return "", err
		}
		for _, b := range res.Entries {
			var m message
			if err := json.Unmarshal(b, &m); err != nil {
				return "", fmt.Errorf("decode %s: %w", b, err)
			}
			if v, ok := m.Value["title"]; ok {
				title = v
			}
		}
		o = res.End
		if res.AtHead {
			return title, nil
		}
	}
}
