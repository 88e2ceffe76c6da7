package shapecache

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

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
		// The old log keeps receiving changes for the grace period.
		waitFor(t, old, fmt.Sprintf("update %d", i), func() bool { return rows(t, old)[`"public"."items"/"0"`]["title"] == fmt.Sprintf("v%d", i) })
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
	for u := 1; u <= 3; u++ {
		h.exec(fmt.Sprintf("UPDATE items SET title = 'v%d'", u)) // every shape's row
	}
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
