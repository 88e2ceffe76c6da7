package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// droppedCheck409 fails unless r is Electric's must-refetch answer for a
// shape whose table is gone: 409, the must-refetch body, no handle to
// follow (no successor can exist), cached for one second only, and none
// of the headers of a log response.
func droppedCheck409(t *testing.T, what string, r response) {
	t.Helper()
	if r.Status != http.StatusConflict {
		t.Fatalf("%s: %d %s, want 409 must-refetch", what, r.Status, r.Body)
	}
	var body []map[string]map[string]string
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body) != 1 || body[0]["headers"]["control"] != "must-refetch" {
		t.Errorf("%s: body %s, want [{\"headers\":{\"control\":\"must-refetch\"}}]", what, r.Body)
	}
	if h := r.Header.Get("electric-handle"); h != "" {
		t.Errorf("%s: electric-handle %q for a dropped table", what, h)
	}
	if cc := r.Header.Get("cache-control"); cc != "public, max-age=1, must-revalidate" {
		t.Errorf("%s: cache-control %q", what, cc)
	}
	for _, h := range []string{"electric-offset", "electric-cursor", "electric-schema"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("%s: %s %q on a 409", what, h, v)
		}
	}
}

// TestDroppedTableMustRefetch: a client of a shape whose table is dropped
// gets 409 must-refetch (as Electric answers), on the long-poll waiting
// when the table goes and on every later request that carries the handle,
// live or not; only its restart at offset -1 gets the 400 "does not
// exist". A handle request for a table that exists is unaffected.
func TestDroppedTableMustRefetch(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g`,
		`CREATE TABLE others (id int PRIMARY KEY)`,
		`INSERT INTO others VALUES (1)`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=20s", "VOLT_SCHEMA_CHECK_INTERVAL=200ms")

	f := newFollower(v, "table", "items")
	f.catchUp(t)
	other := newFollower(v, "table", "others")
	other.catchUp(t)
	handle, offset, cursor := f.handle, f.offset, f.cursor

	// A long-poll at the head; the table is dropped while it waits (or,
	// if it is slow to arrive, before it does: both must answer 409).
	type result struct {
		r   response
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		c := &http.Client{Timeout: time.Minute}
		r, err := fetch(c, v.shapeURL("table", "items", "handle", handle, "offset", offset, "live", "true", "cursor", cursor))
		done <- result{r, err, time.Now()}
	}()
	dropped := time.Now()
	pgtest.Exec(t, db, `DROP TABLE items`)
	var res result
	select {
	case res = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the long-poll was not answered 15 s after DROP TABLE (schema check every 200 ms)")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	droppedCheck409(t, "the long-poll when the table was dropped", res.r)
	t.Logf("long-poll answered %v after DROP TABLE", res.at.Sub(dropped).Round(time.Millisecond))

	// Every later request with the handle: non-live, live, at the
	// snapshot's start, with the original offset, as GET and as HEAD.
	for _, c := range []struct {
		what string
		kv   []string
	}{
		{"non-live request at the head", []string{"offset", offset}},
		{"non-live request in the snapshot", []string{"offset", "0_0"}},
		{"live request", []string{"offset", offset, "live", "true", "cursor", cursor}},
		{"SSE request", []string{"offset", offset, "live", "true", "live_sse", "true", "cursor", cursor}},
	} {
		kv := append([]string{"table", "items", "handle", handle}, c.kv...)
		droppedCheck409(t, c.what+" after the drop", get(t, v.shapeURL(kv...)))
	}
	if r := do(t, http.MethodHead, v.shapeURL("table", "items", "handle", handle, "offset", offset)); r.Status != http.StatusConflict {
		t.Errorf("HEAD with the handle after the drop: %d, want 409", r.Status)
	}

	// The client restarts at -1 (keeping no handle): now the table's
	// absence is the client's problem, a 400 that names it.
	r := get(t, v.shapeURL("table", "items", "offset", "-1"))
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `Table \"public\".\"items\" does not exist`) {
		t.Errorf("restart at -1 after the drop: %d %s, want 400 naming the table", r.Status, r.Body)
	}
	if cc := r.Header.Get("cache-control"); cc != "no-store" {
		t.Errorf("restart at -1 after the drop: cache-control %q, want no-store", cc)
	}
	// offset=now ignores the handle (as Electric does): it is a restart too.
	if r := get(t, v.shapeURL("table", "items", "offset", "now", "handle", handle)); r.Status != http.StatusBadRequest {
		t.Errorf("offset=now after the drop: %d %s, want 400", r.Status, r.Body)
	}

	// The other table's shape is untouched: its client carries on.
	if r := get(t, v.shapeURL("table", "others", "handle", other.handle, "offset", other.offset)); r.Status != 200 {
		t.Errorf("the other table's client: %d %s", r.Status, r.Body)
	}
	pgtest.Exec(t, db, `INSERT INTO others VALUES (2)`)
	other.pollUntil(t, "the other table's insert", func(rows map[string]map[string]*string) bool {
		return len(rows) == 2
	})

	// A table of that name created anew is a new shape: a request with the
	// old handle is sent to it by a 409 that names its handle.
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items VALUES (7, 'seven')`)
	r = get(t, v.shapeURL("table", "items", "handle", handle, "offset", offset))
	if r.Status != http.StatusConflict || r.Header.Get("electric-handle") == "" || r.Header.Get("electric-handle") == handle {
		t.Fatalf("old handle after the table was recreated: %d, handle %q (old %q), want 409 towards a new handle", r.Status, r.Header.Get("electric-handle"), handle)
	}
	g := newFollower(v, "table", "items")
	g.catchUp(t)
	if len(g.rows) != 1 || g.handle != r.Header.Get("electric-handle") {
		t.Errorf("the recreated table's shape: handle %q (409 said %q), rows %s", g.handle, r.Header.Get("electric-handle"), dump(g.rows))
	}
}

// TestDroppedTableBeforeRequest: a request with a handle whose shape was
// removed while no client was waiting (volt noticed the drop on its own)
// gets 409, not 400.
func TestDroppedTableBeforeRequest(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items VALUES (1, 'one')`)
	v := startVolt(t, db, "VOLT_SCHEMA_CHECK_INTERVAL=200ms")
	f := newFollower(v, "table", "items")
	f.catchUp(t)
	pgtest.Exec(t, db, `DROP TABLE items`)
	// The shape's removal is observable through /v1/stats?handle=.
	deadline := time.Now().Add(15 * time.Second)
	for get(t, v.URL+"/v1/stats?handle="+f.handle).Status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("the shape of the dropped table was not removed within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	droppedCheck409(t, "non-live request after the removal", get(t, v.shapeURL("table", "items", "handle", f.handle, "offset", f.offset)))
	droppedCheck409(t, "live request after the removal", get(t, v.shapeURL("table", "items", "handle", f.handle, "offset", f.offset, "live", "true", "cursor", f.cursor)))
}
