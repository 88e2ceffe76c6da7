package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestMustRefetch covers every way a handle stops being valid: a handle
// for another definition, DELETE, TRUNCATE, and DDL on the table.
func TestMustRefetch(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'a')`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=2s", "VOLT_SCHEMA_CHECK_INTERVAL=200ms")

	expect409 := func(t *testing.T, r response, old string) string {
		t.Helper()
		if r.Status != http.StatusConflict || string(r.Body) != `[{"headers":{"control":"must-refetch"}}]` {
			t.Fatalf("want 409 must-refetch, got %d %s", r.Status, r.Body)
		}
		next := r.Header.Get("electric-handle")
		if next == "" || next == old {
			t.Fatalf("409 must carry a new handle, got %q (old %q)", next, old)
		}
		if r.Header.Get("electric-offset") != "" {
			t.Errorf("409 carries electric-offset")
		}
		return next
	}

	t.Run("handle of another definition", func(t *testing.T) {
		a := get(t, v.shapeURL("table", "items", "offset", "-1"))
		h := a.Header.Get("electric-handle")
		r := get(t, v.shapeURL("table", "items", "offset", "0_0", "handle", h, "where", "id > 0"))
		next := expect409(t, r, h)
		b := get(t, v.shapeURL("table", "items", "offset", "-1", "where", "id > 0"))
		if b.Header.Get("electric-handle") != next {
			t.Errorf("409 pointed to %s but the shape is %s", next, b.Header.Get("electric-handle"))
		}
	})

	t.Run("unknown handle", func(t *testing.T) {
		expect409(t, get(t, v.shapeURL("table", "items", "offset", "0_0", "handle", "1-1")), "1-1")
	})

	t.Run("delete", func(t *testing.T) {
		f := newFollower(v, "table", "items", "where", "id < 100")
		f.catchUp(t)
		old := f.handle
		if r := do(t, http.MethodDelete, v.shapeURL("handle", old)); r.Status != http.StatusAccepted {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
		if r := do(t, http.MethodDelete, v.shapeURL("handle", old)); r.Status != http.StatusNotFound {
			t.Fatalf("second DELETE: %d %s", r.Status, r.Body)
		}
		r := f.poll(t)
		expect409(t, r, old)
		f.pollUntil(t, "re-sync after delete", func(rows map[string]map[string]*string) bool { return len(rows) == 1 })
	})

	t.Run("delete by table", func(t *testing.T) {
		f := newFollower(v, "table", "items")
		f.catchUp(t)
		if r := do(t, http.MethodDelete, v.shapeURL("table", "items")); r.Status != http.StatusAccepted {
			t.Fatalf("DELETE ?table: %d %s", r.Status, r.Body)
		}
		expect409(t, f.pollRaw(t), f.handle)
	})

	t.Run("truncate while live", func(t *testing.T) {
		f := newFollower(v, "table", "items")
		f.catchUp(t)
		old := f.handle
		done := make(chan response, 1)
		go func() { done <- f.pollRaw(t) }()
		pgtest.Exec(t, db, `TRUNCATE items`, `INSERT INTO items VALUES (2, 'b')`)
		expect409(t, <-done, old)
		f.reset()
		f.pollUntil(t, "re-sync after truncate", func(rows map[string]map[string]*string) bool {
			_, ok := rows[`"public"."items"/"2"`]
			return len(rows) == 1 && ok
		})
	})

	t.Run("alter table", func(t *testing.T) {
		f := newFollower(v, "table", "items")
		f.catchUp(t)
		old := f.handle
		pgtest.Exec(t, db, `ALTER TABLE items ADD COLUMN extra int DEFAULT 7`)
		var r response
		for r = f.pollRaw(t); r.Status == 200; r = f.pollRaw(t) {
		}
		expect409(t, r, old)
		f.reset()
		f.pollUntil(t, "re-sync with the new column", func(rows map[string]map[string]*string) bool {
			row := rows[`"public"."items"/"2"`]
			return row != nil && row["extra"] != nil && *row["extra"] == "7"
		})
	})
}

// pollRaw makes the follower's next request without applying a 409.
func (f *follower) pollRaw(t *testing.T) response {
	kv := append([]string{}, f.params...)
	kv = append(kv, "offset", f.offset, "handle", f.handle)
	if f.upToDate {
		kv = append(kv, "live", "true", "cursor", f.cursor)
	}
	return get(t, f.v.shapeURL(kv...))
}

func (f *follower) reset() {
	f.handle, f.offset, f.upToDate = "", "-1", false
	f.rows = map[string]map[string]*string{}
}

func TestOffsetNowAndETags(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'a')`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s")

	now := get(t, v.shapeURL("table", "items", "offset", "now"))
	if now.Status != 200 || len(now.Msgs) != 1 || now.Msgs[0].control() != "up-to-date" {
		t.Fatalf("offset=now: %d %s", now.Status, now.Body)
	}
	if now.Header.Get("electric-offset") != "0_inf" || now.Header.Get("electric-has-data") != "false" {
		t.Errorf("offset=now headers: %v", now.Header)
	}
	if _, ok := now.Msgs[0].Headers["global_last_seen_lsn"].(string); !ok {
		t.Errorf("global_last_seen_lsn must be a string: %s", now.Body)
	}

	first := get(t, v.shapeURL("table", "items", "offset", "-1"))
	if cc := first.Header.Get("cache-control"); cc != "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746" {
		t.Errorf("initial cache-control %q", cc)
	}
	etag := first.Header.Get("etag")
	h := first.Header.Get("electric-handle")
	if etag != `"`+h+`:-1:0_0"` {
		t.Errorf("etag %s", etag)
	}
	if r := get(t, v.shapeURL("table", "items", "offset", "-1"), "If-None-Match", etag); r.Status != http.StatusNotModified || len(r.Body) != 0 {
		t.Errorf("revalidation: %d %s", r.Status, r.Body)
	} else if r.Header.Get("electric-handle") != h {
		t.Errorf("304 without headers")
	}
	// HEAD gives the headers and no body.
	if r := do(t, http.MethodHead, v.shapeURL("table", "items", "offset", "-1")); r.Status != 200 || len(r.Body) != 0 || r.Header.Get("electric-offset") != "0_0" {
		t.Errorf("HEAD: %d %q %v", r.Status, r.Body, r.Header)
	}
	// The live timeout answers up-to-date with a unique etag and no data.
	second := get(t, v.shapeURL("table", "items", "offset", "0_0", "handle", h))
	off := second.Header.Get("electric-offset")
	live := get(t, v.shapeURL("table", "items", "offset", off, "handle", h, "live", "true", "cursor", ""))
	if live.Status != 200 || len(live.Msgs) != 1 || live.Msgs[0].control() != "up-to-date" {
		t.Fatalf("live timeout: %d %s", live.Status, live.Body)
	}
	if live.Header.Get("electric-has-data") != "false" || live.Header.Get("electric-offset") != off || live.Header.Get("electric-cursor") == "" {
		t.Errorf("live timeout headers %v", live.Header)
	}
	if live.Header.Get("electric-schema") != "" {
		t.Errorf("live responses carry no schema")
	}
	if cc := live.Header.Get("cache-control"); cc != "public, max-age=5, stale-while-revalidate=5" {
		t.Errorf("live cache-control %q", cc)
	}
	live2 := get(t, v.shapeURL("table", "items", "offset", off, "handle", h, "live", "true", "cursor", live.Header.Get("electric-cursor")))
	if live2.Header.Get("etag") == live.Header.Get("etag") {
		t.Errorf("no-change responses must not share an etag")
	}
	if live2.Header.Get("electric-cursor") == live.Header.Get("electric-cursor") {
		t.Errorf("the cursor must change between polls")
	}
}

func TestCORSOptionsHealthAndRoutes(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY)`)
	v := startVolt(t, db)
	r := do(t, http.MethodOptions, v.shapeURL("table", "items"), "Origin", "http://localhost:5173", "Access-Control-Request-Headers", "if-none-match, x-custom")
	if r.Status != 204 || r.Header.Get("access-control-allow-origin") != "http://localhost:5173" ||
		r.Header.Get("access-control-allow-headers") != "if-none-match" || r.Header.Get("access-control-max-age") != "86400" {
		t.Errorf("OPTIONS: %d %v", r.Status, r.Header)
	}
	g := get(t, v.shapeURL("table", "items", "offset", "-1"))
	exposed := g.Header.Get("access-control-expose-headers")
	for _, h := range []string{"electric-handle", "electric-offset", "electric-schema", "electric-cursor", "electric-up-to-date", "electric-has-data"} {
		if !strings.Contains(exposed, h) {
			t.Errorf("%s not exposed: %q", h, exposed)
		}
	}
	if g.Header.Get("access-control-allow-origin") != "*" {
		t.Errorf("allow-origin without Origin: %q", g.Header.Get("access-control-allow-origin"))
	}
	if h := get(t, v.URL+"/v1/health"); h.Status != 200 || strings.TrimSpace(string(h.Body)) != `{"status":"active"}` {
		t.Errorf("health: %d %s", h.Status, h.Body)
	}
	if n := get(t, v.URL+"/nope"); n.Status != 404 || string(n.Body) != "Not found" {
		t.Errorf("unknown route: %d %s", n.Status, n.Body)
	}
	if s := get(t, v.URL+"/v1//shape?table=items&offset=-1"); s.Status != 200 {
		t.Errorf("non-normalised path: %d %s", s.Status, s.Body)
	}
}
