package e2e

import (
	"strconv"
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

// glsnSeen returns the global_last_seen_lsn of r's up-to-date message.
func glsnSeen(t *testing.T, r response) uint64 {
	t.Helper()
	for _, m := range r.Msgs {
		if m.control() != "up-to-date" {
			continue
		}
		s, _ := m.Headers["global_last_seen_lsn"].(string)
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("up-to-date's global_last_seen_lsn %q: %v", s, err)
		}
		return n
	}
	t.Fatalf("no up-to-date in %s", r.Body)
	return 0
}

// TestGlobalLSNNeverGoesBack: a live answer's global_last_seen_lsn is never
// below one the client saw before. A move's entries on a log=changes_only
// subquery shape sit at synthetic offsets (1_N) when the log holds no
// transaction yet, and the live answer reported that offset's LSN, 1.
func TestGlobalLSNNeverGoesBack(t *testing.T) {
	db := sqParentChild(t)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=2s")
	base := []string{"table", "child", "where", sqWhere, "log", "changes_only"}
	// A write elsewhere moves the server's processed LSN past the start.
	pgtest.Exec(t, db, `CREATE TABLE other (id int PRIMARY KEY)`, `INSERT INTO other VALUES (1)`)
	r := get(t, v.shapeURL(append(base, "offset", "now")...))
	if r.Status != 200 {
		t.Fatalf("offset=now: %d %s", r.Status, r.Body)
	}
	seen := glsnSeen(t, r)
	handle, offset := r.Header.Get("electric-handle"), r.Header.Get("electric-offset")
	steps := []string{
		`UPDATE parent SET value = 1 WHERE id = 2`, // child 2 moves in
		`UPDATE child SET value = 11 WHERE id = 1`, // an outer change
		`UPDATE parent SET value = 3 WHERE id = 1`, // child 1 moves out
	}
	for _, sql := range steps {
		pgtest.Exec(t, db, sql)
		for {
			r := get(t, v.shapeURL(append(base, "handle", handle, "offset", offset, "live", "true")...))
			if r.Status != 200 {
				t.Fatalf("after %s: %d %s", sql, r.Status, r.Body)
			}
			offset = r.Header.Get("electric-offset")
			g := glsnSeen(t, r)
			if g < seen {
				t.Fatalf("after %s: global_last_seen_lsn %d, below %d seen before", sql, g, seen)
			}
			seen = g
			if len(r.Msgs) > 1 { // the step's messages arrived
				break
			}
		}
	}
}
