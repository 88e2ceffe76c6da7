package httpapi

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// TestLiveFanOutReadsOnce parks many identical long-polls on one shape,
// commits one change, and checks that every client gets the same body (the
// new row and up-to-date) with its own cursor, while the log was read once.
func TestLiveFanOutReadsOnce(t *testing.T) {
	const clients = 200
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'one')`)
	st := startStack(t, db, Config{LongPollTimeout: 30 * time.Second})

	first := mustFetch(t, st.shapeURL("table", "items", "offset", "-1"))
	handle := first.header.Get(volt.HeaderHandle)
	head := mustFetch(t, st.shapeURL("table", "items", "offset", "0_0", "handle", handle))
	if head.status != 200 || !hasHeader(head.header, volt.HeaderUpToDate) {
		t.Fatalf("catch-up: %d %v %s", head.status, head.header, head.body)
	}
	offset := head.header.Get(volt.HeaderOffset)

	live := st.shapeURL("table", "items", "offset", offset, "handle", handle, "live", "true", "cursor", "7")
	replies := make([]reply, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = fetch(live)
		}()
	}
	waitFor(t, 10*time.Second, "every long-poll to park", func() bool { return st.srv.parked.Load() == clients })
	before := st.srv.reads.calls.Load()
	pgtest.Exec(t, db, `INSERT INTO items VALUES (2, 'two')`)
	wg.Wait()

	if n := st.srv.reads.calls.Load() - before; n != 1 {
		t.Errorf("the log was read %d times for %d identical long-polls after one change, want 1", n, clients)
	}
	for i, r := range replies {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if r.status != 200 || !bytes.Equal(r.body, replies[0].body) || r.header.Get(volt.HeaderOffset) != replies[0].header.Get(volt.HeaderOffset) {
			t.Fatalf("client %d: %d offset %s %s; client 0: offset %s %s", i, r.status, r.header.Get(volt.HeaderOffset), r.body, replies[0].header.Get(volt.HeaderOffset), replies[0].body)
		}
		if c := r.header.Get(volt.HeaderCursor); c == "" || c == "7" {
			t.Fatalf("client %d: electric-cursor %q", i, c)
		}
	}
	msgs := messages(t, replies[0].body)
	if len(msgs) != 2 || !strings.Contains(string(replies[0].body), `"two"`) || !hasHeader(replies[0].header, volt.HeaderUpToDate) {
		t.Fatalf("want the new row then up-to-date, got %s", replies[0].body)
	}
	if c, ok := msgs[1]["headers"].(map[string]any); !ok || c["control"] != "up-to-date" {
		t.Fatalf("last message is not up-to-date: %s", replies[0].body)
	}
}

// TestConcurrentInitialReadsShared sends identical offset=-1 requests for
// a new shape at once: one shape, one handle, the same rows for everyone,
// and far fewer reads of the first chunk than requests.
func TestConcurrentInitialReadsShared(t *testing.T) {
	const clients = 100
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`,
		`INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g`)
	st := startStack(t, db, Config{})

	u := st.shapeURL("table", "items", "offset", "-1")
	replies := make([]reply, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i], errs[i] = fetch(u)
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range replies {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if r.status != 200 || r.header.Get(volt.HeaderHandle) != replies[0].header.Get(volt.HeaderHandle) || !bytes.Equal(r.body, replies[0].body) {
			t.Fatalf("client %d: %d handle %s (client 0: %s), same body %v", i, r.status, r.header.Get(volt.HeaderHandle), replies[0].header.Get(volt.HeaderHandle), bytes.Equal(r.body, replies[0].body))
		}
	}
	if n := len(messages(t, replies[0].body)); n != 2001 {
		t.Fatalf("want 2000 rows and snapshot-end, got %d messages", n)
	}
	if n := st.srv.Cache.Len(); n != 1 {
		t.Errorf("%d shapes for one definition", n)
	}
	// Reads of chunk 0 happen once per log change while the snapshot runs
	// (each answering "pending") and once when it is sealed, not per client.
	if n := st.srv.reads.calls.Load(); n >= clients/2 {
		t.Errorf("%d log reads for %d identical requests", n, clients)
	}
}

// Identical initial requests for a shape that exists cost no catalog
// query; after the shape is gone, the next one looks the table up again.
func TestInitialRequestsSkipTheCatalog(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'one')`)
	st := startStack(t, db, Config{LongPollTimeout: time.Second, AllowShapeDeletion: true})
	u := st.shapeURL("table", "items", "offset", "-1", "where", "id > 0")
	first := mustFetch(t, u)
	before := st.tableLookups.Load()
	for range 20 {
		if r := mustFetch(t, u); r.status != 200 || r.header.Get(volt.HeaderHandle) != first.header.Get(volt.HeaderHandle) {
			t.Fatalf("repeat: %d %s", r.status, r.header.Get(volt.HeaderHandle))
		}
	}
	if n := st.tableLookups.Load() - before; n != 0 {
		t.Fatalf("20 identical initial requests made %d catalog queries, want 0", n)
	}
	if !st.srv.Cache.Delete(first.header.Get(volt.HeaderHandle)) {
		t.Fatal("delete failed")
	}
	if r := mustFetch(t, u); r.status != 200 || r.header.Get(volt.HeaderHandle) == first.header.Get(volt.HeaderHandle) {
		t.Fatalf("after delete: %d %s", r.status, r.header.Get(volt.HeaderHandle))
	}
	if st.tableLookups.Load() == before {
		t.Fatal("a request for a deleted shape did not look the table up again")
	}
}
