package httpapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// Pages larger than streamThreshold are streamed from the log's file; the
// client must get exactly the rows, snapshot and live, as from a read.
func TestLargePagesAreStreamed(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`,
		`INSERT INTO items SELECT g, repeat('x', 1000) FROM generate_series(1, 400) g`)
	st := startStack(t, db, Config{LongPollTimeout: 5 * time.Second})

	first := mustFetch(t, st.shapeURL("table", "items", "offset", "-1"))
	if first.status != 200 || len(first.body) < 2*streamThreshold {
		t.Fatalf("snapshot page: %d, %d bytes (want a page above %d)", first.status, len(first.body), streamThreshold)
	}
	if first.header.Get("content-length") != "" {
		t.Fatalf("a streamed page has content-length %s", first.header.Get("content-length"))
	}
	rows := 0
	for _, m := range messages(t, first.body) {
		if m["key"] != nil {
			rows++
		}
	}
	if rows != 400 {
		t.Fatalf("snapshot page holds %d rows, want 400", rows)
	}
	handle, offset := first.header.Get(volt.HeaderHandle), first.header.Get(volt.HeaderOffset)
	// A live transaction larger than the threshold, read from the head.
	head := mustFetch(t, st.shapeURL("table", "items", "offset", offset, "handle", handle))
	offset = head.header.Get(volt.HeaderOffset)
	pgtest.Exec(t, db, `UPDATE items SET title = repeat('y', 1000)`)
	var got int
	waitFor(t, 10*time.Second, "the 400 updates", func() bool {
		r := mustFetch(t, st.shapeURL("table", "items", "offset", offset, "handle", handle))
		for _, m := range messages(t, r.body) {
			if v, ok := m["value"].(map[string]any); ok && fmt.Sprint(v["title"])[:1] == "y" {
				got++
			}
		}
		offset = r.header.Get(volt.HeaderOffset)
		return got >= 400
	})
	if got != 400 {
		t.Fatalf("%d updates, want 400", got)
	}
}
