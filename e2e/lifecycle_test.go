package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// TestSigtermKeepsEveryShape stops volt with SIGTERM while writers change
// the rows of many shapes, again and again: every stop is clean (exit 0),
// every shape comes back with its handle, no shape is ever removed, and
// clients resuming from their offsets end with Postgres' rows. An append
// in flight used to meet a closed log at shutdown (replication was not
// joined before the cache closed), which removed the shape for good.
func TestSigtermKeepsEveryShape(t *testing.T) {
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text, n int)`,
		`INSERT INTO items SELECT g, 't' || g, g % 10 FROM generate_series(1, 300) g`)
	// Compaction would move the shapes to new handles (legitimately): off.
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s", "VOLT_CHUNK_BYTES=4096", "VOLT_COMPACT_MIN_OPS=-1")
	var followers []*follower
	for k := 0; k < 10; k++ {
		followers = append(followers, newFollower(v, "table", "items", "where", fmt.Sprintf("n %% 10 = %d", k)))
	}
	followers = append(followers, newFollower(v, "table", "items"), newFollower(v, "table", "items", "where", "id <= 100"))
	handles := map[string]string{} // where → handle
	for _, f := range followers {
		f.catchUp(t)
		handles[lifecycleWhere(f)] = f.handle
	}

	var stopped atomic.Bool
	var wg sync.WaitGroup
	seed := testseed.Seed(t)
	for w := 0; w < 1; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			writeRandomly(t, db, &stopped, rand.New(rand.NewPCG(seed, uint64(w))))
		}(w)
	}
	for round := 0; round < rounds; round++ {
		followers[round%len(followers)].pollNoFail(t)
		v.Stop()
		if code := v.ExitCode(); code != 0 {
			t.Fatalf("round %d: volt exited with %d on SIGTERM", round, code)
		}
		v.Restart()
		for _, f := range followers {
			where := lifecycleWhere(f)
			r := get(t, v.shapeURL(append(f.params, "offset", "-1")...))
			if r.Status != 200 || r.Header.Get("electric-handle") != handles[where] {
				t.Fatalf("round %d: shape %q answers %d with handle %q, want %q: %s", round, where, r.Status, r.Header.Get("electric-handle"), handles[where], r.Body)
			}
		}
	}
	stopped.Store(true)
	wg.Wait()
	// The writers outpace volt (replication keep-up is its own issue), so
	// it may still be working through their WAL: wait until it has
	// confirmed all of it before comparing.
	waitCaughtUp(t, db, 3*time.Minute)
	if n := strings.Count(v.Log(), "shape removed"); n > 0 {
		t.Fatalf("%d shapes were removed across %d clean restarts", n, rounds)
	}
	for _, f := range followers {
		where := lifecycleWhere(f)
		query := `SELECT id, title, n FROM items`
		if where != "" {
			query += " WHERE " + where
		}
		want := pgRows(t, db, "items", 1, query)
		var diff string
		defer func() {
			if t.Failed() && diff != "" {
				t.Logf("shape %q differs from Postgres: %s (handle %s, offset %s)", where, diff, f.handle, f.offset)
				fresh := newFollower(v, f.params...)
				fresh.catchUp(t)
				t.Logf("a new client of %q differs by: %q", where, diffRows(fresh.rows, want))
			}
		}()
		f.pollUntil(t, "the rows of "+where, func(rows map[string]map[string]*string) bool {
			diff = diffRows(rows, want)
			return diff == ""
		})
		if f.handle != handles[where] {
			t.Fatalf("shape %q: the client was sent to handle %s from %s", where, f.handle, handles[where])
		}
		if len(f.violations) > 0 {
			t.Fatalf("shape %q: %v", where, f.violations)
		}
	}
}

// waitCaughtUp waits (bounded) until volt's slot has confirmed the WAL
// written so far.
func waitCaughtUp(t *testing.T, db string, bound time.Duration) {
	t.Helper()
	var last string // the last WAL byte written so far
	sqQuery(t, db, `SELECT (pg_current_wal_lsn() - '0/1'::pg_lsn)::text`, &last)
	waitSlotBeyond(t, db, last, bound)
}

// lifecycleWhere is a follower's where clause ("" for the whole table).
func lifecycleWhere(f *follower) string {
	for i := 0; i+1 < len(f.params); i += 2 {
		if f.params[i] == "where" {
			return f.params[i+1]
		}
	}
	return ""
}
