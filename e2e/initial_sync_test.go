package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestKill9MidSnapshotRestartsClean kills volt with SIGKILL while a client
// is receiving a shape's first snapshot chunk as it is written: the
// client's response is cut (or, if the chunk was sealed first, it is a
// whole JSON array, never a truncated one), and after the restart a new
// client gets exactly the table's rows, from a snapshot taken anew.
func TestKill9MidSnapshotRestartsClean(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`,
		`INSERT INTO items SELECT g, repeat('x', 150) || g FROM generate_series(1, 50000) g`)
	v := startVolt(t, db)
	resp, err := http.Get(v.shapeURL("table", "items", "offset", "-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("offset=-1: %d", resp.StatusCode)
	}
	first := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first bytes of the snapshot: %v", err)
	}
	v.Kill()
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() { b, err := io.ReadAll(resp.Body); done <- result{b, err} }()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the killed server's response neither ended nor failed within 30 s")
	}
	t.Logf("the kill cut the response after %d bytes: %v", len(first)+len(r.body), r.err)
	if r.err == nil {
		var msgs []json.RawMessage
		if err := json.Unmarshal(append(first, r.body...), &msgs); err != nil {
			t.Fatalf("the response cut by the kill ended cleanly but is not a JSON array (%d bytes): %v", len(first)+len(r.body), err)
		}
	}
	v.Restart()
	f := newFollower(v, "table", "items")
	want := pgRows(t, db, "items", 1, `SELECT id, title FROM items`)
	f.pollUntil(t, "the table's rows after the restart", func(rows map[string]map[string]*string) bool { return diffRows(rows, want) == "" })
}
