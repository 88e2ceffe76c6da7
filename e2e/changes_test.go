package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// liveBatch waits for the next live response with data.
func liveBatch(t *testing.T, f *follower) []message {
	t.Helper()
	f.catchUp(t)
	for i := 0; i < 50; i++ {
		r := f.poll(t)
		var out []message
		for _, m := range r.Msgs {
			if m.control() == "" {
				out = append(out, m)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	t.Fatal("no live data")
	return nil
}

func TestUpdateShapesOfMessages(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text, n int, note text)`, `INSERT INTO items VALUES (1, 'a', 1, 'x')`,
		`CREATE TABLE nopk (a int, b text)`, `INSERT INTO nopk VALUES (1, 'one')`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=2s")

	def := newFollower(v, "table", "items")
	full := newFollower(v, "table", "items", "replica", "full")
	cols := newFollower(v, "table", "items", "columns", "id,title")
	nopk := newFollower(v, "table", "nopk")
	for _, f := range []*follower{def, full, cols, nopk} {
		f.catchUp(t)
	}
	pgtest.Exec(t, db, `UPDATE items SET n = 2 WHERE id = 1`)

	d := liveBatch(t, def)
	if len(d) != 1 || d[0].op() != "update" || len(d[0].Value) != 2 || *d[0].Value["n"] != "2" || *d[0].Value["id"] != "1" {
		t.Errorf("replica=default update must carry the key and changed columns: %+v", d)
	}
	h := d[0].Headers
	if _, ok := h["lsn"].(string); !ok || h["last"] != true || h["op_position"] == nil {
		t.Errorf("live headers: %v", h)
	}
	if txids, ok := h["txids"].([]any); !ok || len(txids) != 1 {
		t.Errorf("txids: %v", h["txids"])
	}
	fu := liveBatch(t, full)
	if len(fu) != 1 || len(fu[0].Value) != 4 || len(fu[0].OldValue) != 1 || *fu[0].OldValue["n"] != "1" {
		t.Errorf("replica=full update must carry the full row and old changed values: %+v", fu)
	}
	// An update of a column outside the projection produces nothing; the
	// next one that touches title does.
	pgtest.Exec(t, db, `UPDATE items SET note = 'y' WHERE id = 1`, `UPDATE items SET title = 'b' WHERE id = 1`)
	c := liveBatch(t, cols)
	for _, m := range c {
		if _, ok := m.Value["n"]; ok {
			t.Errorf("projected shape leaked column n: %+v", m)
		}
	}
	if len(c) != 1 || *c[len(c)-1].Value["title"] != "b" {
		t.Errorf("projected shape changes: %+v", c)
	}
	// A primary key change is a delete and an insert.
	def.pollUntil(t, "the note and title updates", func(rows map[string]map[string]*string) bool {
		r := rows[`"public"."items"/"1"`] // two transactions: they can come in one response or two
		return r != nil && str(r["note"]) == "y" && str(r["title"]) == "b"
	})
	pgtest.Exec(t, db, `UPDATE items SET id = 10 WHERE id = 1`)
	pk := liveBatch(t, def)
	if len(pk) != 2 || pk[0].op() != "delete" || pk[1].op() != "insert" ||
		pk[0].Headers["key_change_to"] != `"public"."items"/"10"` || pk[1].Headers["key_change_from"] != `"public"."items"/"1"` {
		t.Errorf("pk change: %+v", pk)
	}
	if pk[1].Headers["op_position"].(float64) != pk[0].Headers["op_position"].(float64)+1 {
		t.Errorf("pk change ops must be n and n+1: %v %v", pk[0].Headers, pk[1].Headers)
	}
	// Without a primary key every column is the key: an update is delete + insert.
	pgtest.Exec(t, db, `UPDATE nopk SET b = 'uno'`)
	np := liveBatch(t, nopk)
	if len(np) != 2 || np[0].op() != "delete" || np[1].op() != "insert" || np[1].Key != `"public"."nopk"/"1"/"uno"` {
		t.Errorf("no-pk update: %+v", np)
	}
}

func TestSSE(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'a')`)
	v := startVolt(t, db)
	f := newFollower(v, "table", "items")
	f.catchUp(t)
	u := v.shapeURL("table", "items", "handle", f.handle, "offset", f.offset, "live", "true", "live_sse", "true", "cursor", f.cursor)
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "text/event-stream" || resp.Header.Get("cache-control") != "public, max-age=59" {
		t.Fatalf("SSE response: %d %v", resp.StatusCode, resp.Header)
	}
	if resp.Header.Get("electric-cursor") == "" || resp.Header.Get("electric-handle") != f.handle {
		t.Errorf("SSE headers: %v", resp.Header)
	}
	events := make(chan message, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var m message
				if err := json.Unmarshal([]byte(data), &m); err == nil {
					events <- m
				}
			}
		}
		close(events)
	}()
	pgtest.Exec(t, db, `INSERT INTO items VALUES (2, 'b')`, `INSERT INTO items VALUES (3, 'c')`)
	// The two commits may arrive as one batch or two; every batch ends
	// with up-to-date, and the inserts come in commit order.
	var got []message
	inserts := 0
	timeout := time.After(20 * time.Second)
	for inserts < 2 || got[len(got)-1].control() != "up-to-date" {
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatalf("stream ended early after %+v", got)
			}
			got = append(got, m)
			if m.op() == "insert" {
				inserts++
			}
		case <-timeout:
			t.Fatalf("SSE events so far: %+v", got)
		}
	}
	if got[0].op() != "insert" || *got[0].Value["id"] != "2" || *got[len(got)-2].Value["id"] != "3" {
		t.Fatalf("inserts out of order or missing: %+v", got)
	}
	for _, m := range got {
		if m.op() == "" && m.control() != "up-to-date" {
			t.Fatalf("unexpected event %+v", m)
		}
	}
}

// TestChunking checks snapshot and live log chunks respect the byte threshold
// and that following electric-offset yields every row once.
func TestChunking(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series(1, 500) g`)
	v := startVolt(t, db, "VOLT_CHUNK_BYTES=10000", "VOLT_LONG_POLL_TIMEOUT=2s")
	f := newFollower(v, "table", "items")
	var sizes []int
	for !f.upToDate {
		r := f.poll(t)
		sizes = append(sizes, len(r.Body))
	}
	if len(f.rows) != 500 {
		t.Fatalf("rows %d", len(f.rows))
	}
	if len(sizes) < 10 {
		t.Fatalf("expected ~15 chunks, got sizes %v", sizes)
	}
	for _, s := range sizes[:len(sizes)-2] {
		if s < 10000 || s > 12000 {
			t.Errorf("chunk of %d bytes (threshold 10000): %v", s, sizes)
		}
	}
	pgtest.Exec(t, db, `UPDATE items SET title = repeat('y', 100)`)
	var live []int
	for {
		r := f.poll(t)
		live = append(live, len(r.Body))
		if y := f.rows[`"public"."items"/"500"`]; y != nil && strings.HasPrefix(*y["title"], "y") {
			break
		}
	}
	if len(live) < 3 {
		t.Errorf("a 500-row update should span several live chunks: %v", live)
	}
}
