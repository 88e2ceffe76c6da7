package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// TestRestartKeepsShapes stops volt, writes while it is down, and checks
// the shape comes back with the same handle, no new snapshot, and every
// change made meanwhile.
func TestRestartKeepsShapes(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items SELECT g, 't' || g FROM generate_series(1, 50) g`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s")
	f := newFollower(v, "table", "items")
	f.catchUp(t)
	handle := f.handle
	v.Stop()
	pgtest.Exec(t, db, `INSERT INTO items VALUES (51, 'while down')`, `UPDATE items SET title = 'changed' WHERE id = 1`, `DELETE FROM items WHERE id = 2`)
	v.Restart()
	want := pgRows(t, db, "items", 1, `SELECT id, title FROM items`)
	f.pollUntil(t, "changes made while volt was down", func(rows map[string]map[string]*string) bool { return diffRows(rows, want) == "" })
	if f.handle != handle {
		t.Fatalf("handle changed across restart: %s → %s", handle, f.handle)
	}
	if r := get(t, v.shapeURL("table", "items", "offset", "-1")); r.Header.Get("electric-handle") != handle {
		t.Fatalf("a new client got another handle after restart: %s", r.Header.Get("electric-handle"))
	}
}

// TestKill9DuringWrites kills volt with SIGKILL several times while writers
// run; a client that resumes from its last offset ends with exactly the
// rows Postgres has.
func TestKill9DuringWrites(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text, n int)`, `INSERT INTO items SELECT g, 't' || g, 0 FROM generate_series(1, 200) g`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s", "VOLT_CHUNK_BYTES=4096")
	f := newFollower(v, "table", "items")
	even := newFollower(v, "table", "items", "where", "n % 2 = 0")
	f.catchUp(t)
	even.catchUp(t)

	var stopped atomic.Bool
	var wg sync.WaitGroup
	seed := testseed.Seed(t)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			writeRandomly(t, db, &stopped, rand.New(rand.NewPCG(seed, uint64(w))))
		}(w)
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 3; i++ {
			f.pollNoFail(t)
			even.pollNoFail(t)
		}
		v.Kill()
		v.Restart()
	}
	stopped.Store(true)
	wg.Wait()
	want := pgRows(t, db, "items", 1, `SELECT id, title, n FROM items`)
	var lastDiff string
	defer func() {
		if t.Failed() && lastDiff != "" {
			t.Logf("last difference from Postgres: %s (follower at handle %s offset %s)", lastDiff, f.handle, f.offset)
		}
	}()
	f.pollUntil(t, "all rows after kills", func(rows map[string]map[string]*string) bool {
		lastDiff = diffRows(rows, want)
		return lastDiff == ""
	})
	wantEven := pgRows(t, db, "items", 1, `SELECT id, title, n FROM items WHERE n % 2 = 0`)
	even.pollUntil(t, "filtered rows after kills", func(rows map[string]map[string]*string) bool { return diffRows(rows, wantEven) == "" })
}

// pollNoFail polls but tolerates the connection errors of a dying server.
func (f *follower) pollNoFail(t *testing.T) {
	defer func() { _ = recover() }()
	f.poll(t)
}

// writeRandomly writes until stopped is set. Statements run to completion:
// a statement cancelled by a context can still commit on the server after
// the client has given up, and then the rows read afterwards as the
// expected result would miss it.
func writeRandomly(t *testing.T, db string, stopped *atomic.Bool, rng *rand.Rand) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Errorf("writer: %v", err)
		return
	}
	defer conn.Close(ctx)
	for !stopped.Load() {
		if _, err := conn.Exec(ctx, randomItemWrite(rng)); err != nil {
			t.Errorf("write: %v", err)
			return
		}
	}
}

// randomItemWrite is one random change to items(id, title, n): an upsert,
// an update or a delete of one of 300 ids.
func randomItemWrite(rng *rand.Rand) string {
	id := rng.IntN(300) + 1
	switch rng.IntN(3) {
	case 0:
		return fmt.Sprintf(`INSERT INTO items VALUES (%d, 'new %d', %d) ON CONFLICT (id) DO UPDATE SET n = items.n + 1`, id, id, rng.IntN(10))
	case 1:
		return fmt.Sprintf(`UPDATE items SET n = n + 1, title = title || '.' WHERE id = %d`, id)
	default:
		return fmt.Sprintf(`DELETE FROM items WHERE id = %d`, id)
	}
}

// TestResumeAtGlobalLSNAfterRestart: SSE clients resume at
// "<global_last_seen_lsn>_0", which can be past the shape's own last entry;
// after a restart that offset must still be served, not refused.
func TestResumeAtGlobalLSNAfterRestart(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY)`, `CREATE TABLE other (id int PRIMARY KEY)`, `INSERT INTO items VALUES (1)`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s")
	newFollower(v, "table", "other").catchUp(t) // publishes "other" so its writes reach volt
	f := newFollower(v, "table", "items")
	f.catchUp(t)
	pgtest.Exec(t, db, `INSERT INTO other VALUES (1)`)
	o := newFollower(v, "table", "other")
	o.pollUntil(t, "the other table's insert", func(rows map[string]map[string]*string) bool { return len(rows) == 1 })
	r := get(t, v.shapeURL("table", "items", "handle", f.handle, "offset", f.offset))
	g, _ := r.Msgs[len(r.Msgs)-1].Headers["global_last_seen_lsn"].(string)
	if g == "" || g+"_0" <= f.offset && len(g) <= len(f.offset) {
		t.Fatalf("global lsn %q should be past the shape's offset %s", g, f.offset)
	}
	// Once the slot has confirmed past g nothing is replayed after the
	// restart: only the slot position tells volt that g was processed.
	waitSlotPast(t, db, g)
	v.Stop()
	v.Restart()
	r = get(t, v.shapeURL("table", "items", "handle", f.handle, "offset", g+"_0"))
	if r.Status != 200 {
		t.Fatalf("resume at %s_0 after restart: %d %s", g, r.Status, r.Body)
	}
}

func waitSlotPast(t *testing.T, db, lsn string) { waitSlotBeyond(t, db, lsn, 30*time.Second) }

// waitSlotBeyond waits (bounded) until every slot of db has confirmed past
// lsn (a decimal WAL position).
func waitSlotBeyond(t *testing.T, db, lsn string, bound time.Duration) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(bound)
	for {
		var past bool
		err := conn.QueryRow(ctx, `SELECT bool_and(confirmed_flush_lsn - '0/0'::pg_lsn > $1::numeric) FROM pg_replication_slots WHERE database = current_database()`, lsn).Scan(&past)
		if err == nil && past {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never confirmed past %s within %s (%v)", lsn, bound, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the slot: Postgres has no notification for it
	}
}
