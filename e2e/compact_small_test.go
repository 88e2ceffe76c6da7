package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestCompactSmallShapes: a small shape whose rows are updated many times
// is compacted, so a fresh client downloads at most twice its live rows
// (plus control messages), while a client that followed it all along
// keeps its rows right: it reads the old log, changes included, as long
// as it keeps reading it, and gets a 409 must-refetch with the new handle
// only when a compaction makes a third retired generation of the shape
// (the oldest is removed) or, once it stops reading, after the grace
// period (-compact-grace, 2 s here); it then downloads the live rows and
// follows on. Compaction is bounded: while the updates
// arrive a log is compacted only once it holds 32 messages (the default
// -compact-min-ops), the rest is done once the shape is quiet.
//
// Before, the floor was 4,096 messages: a fresh client of a 1-row shape
// updated 200 times downloaded 201 messages.
func TestCompactSmallShapes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		rows, updates int // every row updated this many times, one transaction each
	}{
		{"one row updated 200 times", 1, 200},
		{"ten rows updated twice", 10, 2},
	} {
		t.Run(tc.name, func(t *testing.T) { csRun(t, tc.rows, tc.updates) })
	}
}

func csRun(t *testing.T, rows, updates int) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE cs_items (id int PRIMARY KEY, n int)`,
		fmt.Sprintf(`INSERT INTO cs_items SELECT g, 0 FROM generate_series(1, %d) g`, rows))
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s", "VOLT_COMPACT_GRACE=2s")
	f := newFollower(v, "table", "cs_items")
	f.catchUp(t)
	first := f.handle

	var stmts []string
	for u := 1; u <= updates; u++ {
		for id := 1; id <= rows; id++ {
			stmts = append(stmts, fmt.Sprintf(`UPDATE cs_items SET n = %d WHERE id = %d`, u, id))
		}
	}
	pgtest.Exec(t, db, stmts...) // one transaction each
	final := func(rs map[string]map[string]*string) bool {
		if len(rs) != rows {
			return false
		}
		for _, r := range rs {
			if n := r["n"]; n == nil || *n != fmt.Sprint(updates) {
				return false
			}
		}
		return true
	}
	refetches := csFollow(t, f, "every row's last update", final)

	// A fresh client downloads at most twice the live rows once the shape
	// has been compacted (the quiet trigger acts 2 s after the last change).
	var fresh *follower
	var data int
	deadline := time.Now().Add(30 * time.Second)
	for {
		fresh, data = csDownload(t, v)
		if data <= 2*rows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a fresh client still downloads %d messages for %d live rows", data, rows)
		}
		time.Sleep(200 * time.Millisecond) // polling for a background compaction; no signal to wait on
	}
	if fresh.handle == first {
		t.Fatalf("the shape kept its handle %s: not compacted", first)
	}
	if !final(fresh.rows) || len(fresh.violations) > 0 {
		t.Fatalf("fresh client's rows %s, violations %v", dump(fresh.rows), fresh.violations)
	}
	compactions := strings.Count(v.Log(), "shape compacted")
	// One per 31 appended messages at most while the updates arrive (a
	// new log starts with its rows), and one once quiet.
	if bound := updates*rows/(32-2*rows) + 2; compactions < 1 || compactions > bound {
		t.Fatalf("%d compactions for %d updates of %d rows, want 1 to %d", compactions, updates*rows, rows, bound)
	}

	// Both clients follow a change made after compaction.
	pgtest.Exec(t, db, `UPDATE cs_items SET n = -1 WHERE id = 1`)
	after := func(rs map[string]map[string]*string) bool {
		n := rs[`"public"."cs_items"/"1"`]["n"]
		return n != nil && *n == "-1"
	}
	refetches += csFollow(t, f, "the update after compaction", after)
	csFollow(t, fresh, "the update after compaction", after)
	if len(f.violations) > 0 || len(fresh.violations) > 0 {
		t.Fatalf("violations: follower %v, fresh %v", f.violations, fresh.violations)
	}
	want := pgRows(t, db, "cs_items", 1, `SELECT id, n FROM cs_items`)
	for name, c := range map[string]*follower{"follower": f, "fresh client": fresh} {
		if got, exp := dump(c.rows), dump(want); len(c.rows) != len(want) || !csSameRows(c.rows, want) {
			t.Fatalf("%s has %s, Postgres %s", name, got, exp)
		}
	}
	// While it kept reading, the follower was sent to a newer log only
	// when a compaction made a third retired generation (two are kept).
	if bound := max(compactions-2, 0); refetches > bound {
		t.Fatalf("the reading follower got %d 409s for %d compactions, want at most %d", refetches, compactions, bound)
	}
	// It stops reading: a log that is not the current one is removed
	// after the grace period, and its next request gets one 409 with the
	// current handle, then the live rows.
	if f.handle != fresh.handle {
		left := f.handle
		clWaitLog(t, v, "removal of the log the follower left", func(log string) bool { return clRemoved(log, left) })
		if r := f.poll(t); r.Status != 409 {
			t.Fatalf("the follower's request to its removed log %s got %d, want 409", left, r.Status)
		}
		refetches++
	}
	f.catchUp(t)
	if f.handle != fresh.handle || !csSameRows(f.rows, want) || len(f.violations) > 0 {
		t.Fatalf("the follower reads %s (fresh client: %s) with %s, violations %v", f.handle, fresh.handle, dump(f.rows), f.violations)
	}
	t.Logf("%d rows × %d updates: %d compactions; a fresh client downloads %d row messages; the follower got %d 409s", rows, updates, compactions, data, refetches)
}

// csFollow polls f live until cond holds on its rows; it returns the 409s
// f got on the way.
func csFollow(t *testing.T, f *follower, what string, cond func(map[string]map[string]*string) bool) int {
	t.Helper()
	refetches := 0
	deadline := time.Now().Add(30 * time.Second)
	for !f.upToDate || !cond(f.rows) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; rows: %s", what, dump(f.rows))
		}
		if f.poll(t).Status == 409 {
			refetches++
		}
	}
	return refetches
}

// csDownload is a fresh client downloading the shape from offset=-1 to
// up-to-date; it returns the client and the row messages (not control
// messages) it got.
func csDownload(t *testing.T, v *volt) (*follower, int) {
	t.Helper()
	f := newFollower(v, "table", "cs_items")
	n := 0
	for i := 0; !f.upToDate; i++ {
		if i > 1000 {
			t.Fatal("download never reached up-to-date")
		}
		r := f.poll(t)
		if r.Status == 409 {
			n = 0 // started again on the new handle
		}
		for _, m := range r.Msgs {
			if m.op() != "" {
				n++
			}
		}
	}
	return f, n
}

func csSameRows(a, b map[string]map[string]*string) bool {
	for k, ra := range a {
		rb, ok := b[k]
		if !ok || len(ra) != len(rb) {
			return false
		}
		for c, va := range ra {
			vb := rb[c]
			if (va == nil) != (vb == nil) || (va != nil && *va != *vb) {
				return false
			}
		}
	}
	return true
}
