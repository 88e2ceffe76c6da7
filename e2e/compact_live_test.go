package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestCompactLiveClient: a client long-polling a shape (1 s long-polls,
// over the 300 ms -compact-grace) while it is compacted four times, with
// more than Grace without changes between compactions, gets no 409: the
// log it reads stays, receives every change and keeps its rows equal to
// Postgres. The intermediate logs nobody reads are removed after Grace.
// Once the client stops reading, its log is removed after Grace and its
// next request gets 409 pointing at the current handle.
//
// Before, the old log was removed Grace after the compaction, and every
// live client re-downloaded the shape.
func TestCompactLiveClient(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE cl_items (id int PRIMARY KEY, n int)`, `INSERT INTO cl_items VALUES (1, 0), (2, 0)`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s", "VOLT_COMPACT_GRACE=300ms")
	f := newFollower(v, "table", "cl_items")
	f.catchUp(t)
	first := f.handle

	// The live client polls in the background until stopped.
	stop := make(chan struct{})
	type outcome struct {
		polls, refetches int
		err              error
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		for {
			select {
			case <-stop:
				done <- o
				return
			default:
			}
			r, err := f.pollWith(http.DefaultClient)
			if err != nil {
				o.err = err
				done <- o
				return
			}
			o.polls++
			if r.Status == 409 {
				o.refetches++
			}
		}
	}()

	const rounds = 4
	for round := 1; round <= rounds; round++ {
		// One transaction of 40 messages: over -compact-min-ops (32), one
		// compaction whose successor holds the two rows only.
		var b strings.Builder
		for i := 1; i <= 40; i++ {
			fmt.Fprintf(&b, "UPDATE cl_items SET n = %d WHERE id = %d;", round*100+i, 1+i%2)
		}
		pgtest.Exec(t, db, b.String())
		clWaitLog(t, v, fmt.Sprintf("compaction %d", round), func(log string) bool {
			return strings.Count(log, "shape compacted") >= round
		})
		if round > 1 {
			// The previous successor, read by nobody, goes after Grace
			// without changes (the client's log stays meanwhile).
			clWaitLog(t, v, fmt.Sprintf("removal of the unread log of round %d", round-1), func(log string) bool {
				return strings.Count(log, "reason=compacted") >= round-1
			})
		}
	}
	close(stop)
	o := <-done
	if o.err != nil {
		t.Fatalf("the live client's request failed: %v", o.err)
	}
	if o.refetches > 0 || f.handle != first {
		t.Fatalf("the live client got %d 409s over %d compactions and reads %s, not %s", o.refetches, rounds, f.handle, first)
	}
	pgtest.Exec(t, db, `UPDATE cl_items SET n = -1 WHERE id = 1`)
	final := func(rs map[string]map[string]*string) bool {
		n := rs[`"public"."cl_items"/"1"`]["n"]
		return n != nil && *n == "-1"
	}
	f.pollUntil(t, "the last update", final)
	want := pgRows(t, db, "cl_items", 1, `SELECT id, n FROM cl_items`)
	if f.handle != first || len(f.rows) != len(want) || !csSameRows(f.rows, want) || len(f.violations) > 0 {
		t.Fatalf("the live client reads %s (first %s) with %s, Postgres %s; violations %v", f.handle, first, dump(f.rows), dump(want), f.violations)
	}
	compactions := strings.Count(v.Log(), "shape compacted")

	// The client leaves: its log is removed after Grace, and when it comes
	// back it is sent to the current shape.
	clWaitLog(t, v, "removal of the log the client left", func(log string) bool { return clRemoved(log, first) })
	fresh := newFollower(v, "table", "cl_items")
	fresh.catchUp(t)
	r := f.poll(t)
	if r.Status != 409 || f.handle != fresh.handle {
		t.Fatalf("the returning client got %d with handle %q, want 409 pointing at %s", r.Status, f.handle, fresh.handle)
	}
	f.catchUp(t)
	if !csSameRows(f.rows, want) || len(f.rows) != len(want) {
		t.Fatalf("after its 409 the client has %s, Postgres %s", dump(f.rows), dump(want))
	}
	t.Logf("%d compactions, %d polls by the live client, no 409 while it read", compactions, o.polls)
}

// clWaitLog polls volt's log until cond holds on it (a background action
// logs, there is no other signal).
func clWaitLog(t *testing.T, v *volt, what string, cond func(log string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond(v.Log()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, v.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clRemoved says whether log records the removal of the shape handle.
func clRemoved(log, handle string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "shape removed") && strings.Contains(line, handle) {
			return true
		}
	}
	return false
}
