package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// Shapes with subqueries survive a restart and a kill -9 with their
// handles (issue 16 item 3): no 409, no re-sync, and the moves that
// happened while volt was down reach the clients.

// sqsWatch counts a shape's refetches (409s) and remembers its handles.
type sqsWatch struct {
	mu        sync.Mutex
	refetches int
	moves     int
}

func sqsWatchShape(sh *client.Shape) *sqsWatch {
	w := &sqsWatch{}
	sh.Subscribe(func(sc client.ShapeChange) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.moves += len(sc.Moves)
		if sc.MustRefetch {
			w.refetches++
		}
	})
	return w
}

func (w *sqsWatch) counts() (refetches, moves int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refetches, w.moves
}

// sqsConn connects to db for the test.
func sqsConn(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// sqsAwaitCatalogued waits until the shape catalog in v's storage lists
// handle (a kill -9 before that loses the shape, as for any shape).
func sqsAwaitCatalogued(t *testing.T, v *volt, handle string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := false
		_ = filepath.WalkDir(v.Storage, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == "catalog" {
				if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(handle)) {
					found = true
				}
			}
			return nil
		})
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("shape %s not in the catalog after 10 s", handle)
		}
		time.Sleep(20 * time.Millisecond) // no signal for a file written by another process
	}
}

// sqsExec runs statements, failing the test on an error.
func sqsExec(t *testing.T, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

var sqsResyncLine = regexp.MustCompile(`shape with subqueries resynced.*duration=(\S+)`)

// sqsLogResyncs logs the resync durations volt reported.
func sqsLogResyncs(t *testing.T, v *volt) {
	for _, m := range sqsResyncLine.FindAllStringSubmatch(v.Log(), -1) {
		t.Logf("resync took %s", m[1])
	}
}

// TestSubqueryShapeSurvivesRestart: moves both ways and outer changes
// made while volt is stopped reach a live client after the restart, with
// the same handle and no refetch.
func TestSubqueryShapeSurvivesRestart(t *testing.T) {
	db := sqParentChild(t)
	pgtest.Exec(t, db, `INSERT INTO parent VALUES (3, 1)`, `INSERT INTO child VALUES (3, 3, 30), (4, 2, 40), (5, 1, 50)`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s")
	conn := sqsConn(t, db)
	sh, notify := sqFollow(t, v, sqWhere)
	w := sqsWatchShape(sh)
	sqAwaitEqual(t, conn, sh, notify, sqWhere, "snapshot")
	handle := sh.Stream().Handle()
	v.Stop()
	sqsExec(t, conn,
		`UPDATE parent SET value = 1 WHERE id = 2`, // children 2 and 4 move in
		`UPDATE parent SET value = 0 WHERE id = 3`, // child 3 moves out
		`UPDATE child SET value = 11 WHERE id = 1`,
		`INSERT INTO child VALUES (6, 1, 60), (7, 3, 70)`,
		`DELETE FROM child WHERE id = 5`,
		`UPDATE child SET parent_id = 3 WHERE id = 2`, // leaves by its own change
	)
	v.Restart()
	sqAwaitEqual(t, conn, sh, notify, sqWhere, "after restart")
	// And it goes on moving incrementally.
	sqsExec(t, conn, `UPDATE parent SET value = 1 WHERE id = 3`)
	sqAwaitEqual(t, conn, sh, notify, sqWhere, "a move after restart")
	if got := sh.Stream().Handle(); got != handle {
		t.Fatalf("handle changed across restart: %s → %s", handle, got)
	}
	if r, _ := w.counts(); r != 0 {
		t.Fatalf("%d refetches across the restart, want 0", r)
	}
	if r := get(t, v.shapeURL("table", "child", "where", sqWhere, "offset", "-1")); r.Header.Get("electric-handle") != handle {
		t.Fatalf("a new client got handle %q after restart, want %s", r.Header.Get("electric-handle"), handle)
	}
	sqsLogResyncs(t, v)
}

// TestSubqueryShapeSurvivesKill9: a writer changes both tables at random
// while volt is killed with SIGKILL and restarted; after each round the
// client has the same handle, no refetch, and the rows Postgres has.
// VOLT_SQS_ROUNDS sets the rounds (3).
func TestSubqueryShapeSurvivesKill9(t *testing.T) {
	rounds := 3
	if s := os.Getenv("VOLT_SQS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("VOLT_SQS_ROUNDS: %v", err)
		}
		rounds = n
	}
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE parent (id int PRIMARY KEY, value int)`,
		`CREATE TABLE child (id int PRIMARY KEY, parent_id int, value int)`,
		`INSERT INTO parent SELECT g, g % 2 FROM generate_series(1, 10) g`,
		`INSERT INTO child SELECT g, 1 + g % 10, g FROM generate_series(1, 60) g`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s", "VOLT_CHUNK_BYTES=4096")
	conn := sqsConn(t, db)
	sh, notify := sqFollow(t, v, sqWhere)
	w := sqsWatchShape(sh)
	sqAwaitEqual(t, conn, sh, notify, sqWhere, "snapshot")
	handle := sh.Stream().Handle()
	sqsAwaitCatalogued(t, v, handle)
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	for round := range rounds {
		var stop atomic.Bool
		var writes atomic.Int64
		done := make(chan struct{})
		wconn := sqsConn(t, db)
		wrng := rand.New(rand.NewPCG(seed, uint64(round)))
		go func() {
			defer close(done)
			for !stop.Load() {
				var stmt string
				switch wrng.IntN(5) {
				case 0:
					stmt = fmt.Sprintf(`UPDATE parent SET value = %d WHERE id = %d`, wrng.IntN(2), 1+wrng.IntN(10))
				case 1:
					stmt = fmt.Sprintf(`UPDATE child SET parent_id = %d WHERE id = %d`, 1+wrng.IntN(11), 1+wrng.IntN(80))
				case 2:
					stmt = fmt.Sprintf(`INSERT INTO child VALUES (%d, %d, %d) ON CONFLICT (id) DO UPDATE SET value = excluded.value`, 1+wrng.IntN(80), 1+wrng.IntN(10), wrng.IntN(1000))
				case 3:
					stmt = fmt.Sprintf(`DELETE FROM child WHERE id = %d`, 1+wrng.IntN(80))
				default:
					// An inner and an outer change in one transaction.
					stmt = fmt.Sprintf(`UPDATE parent SET value = 1 - value WHERE id = %d; UPDATE child SET value = value + 1 WHERE parent_id = %d`, 1+wrng.IntN(10), 1+wrng.IntN(10))
				}
				if _, err := wconn.Exec(context.Background(), stmt); err != nil {
					t.Errorf("%s: %v", stmt, err)
					return
				}
				writes.Add(1)
			}
		}()
		sqsAwaitWrites(t, &writes, 20)
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond) // kill at a random moment of the writes
		v.Kill()
		sqsAwaitWrites(t, &writes, writes.Load()+10)
		v.Restart()
		sqsAwaitWrites(t, &writes, writes.Load()+20)
		stop.Store(true)
		<-done
		what := fmt.Sprintf("round %d (%d writes)", round, writes.Load())
		sqAwaitEqual(t, conn, sh, notify, sqWhere, what)
		if got := sh.Stream().Handle(); got != handle {
			t.Fatalf("%s: handle changed: %s → %s", what, handle, got)
		}
		if r, _ := w.counts(); r != 0 {
			t.Fatalf("%s: %d refetches, want 0", what, r)
		}
	}
	sqsLogResyncs(t, v)
}

// sqsAwaitWrites waits until the writer has made n writes.
func sqsAwaitWrites(t *testing.T, writes *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for writes.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("writer stuck at %d writes, want %d", writes.Load(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling another goroutine's counter
	}
}

// TestSubqueryNestedSurvivesRestart: a nested subquery shape keeps its
// handle across a restart and gets the moves two levels down made while
// volt was stopped.
func TestSubqueryNestedSurvivesRestart(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE grand (id int PRIMARY KEY, flag bool)`,
		`CREATE TABLE parent (id int PRIMARY KEY, grand_id int)`,
		`CREATE TABLE child (id int PRIMARY KEY, parent_id int, value int)`,
		`INSERT INTO grand VALUES (1, true), (2, false), (3, true)`,
		`INSERT INTO parent VALUES (1, 1), (2, 2), (3, 2), (4, 3)`,
		`INSERT INTO child SELECT g, 1 + g % 4, g FROM generate_series(1, 12) g`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s")
	conn := sqsConn(t, db)
	clause := `parent_id IN (SELECT id FROM parent WHERE grand_id IN (SELECT id FROM grand WHERE flag))`
	sh, notify := sqFollow(t, v, clause)
	w := sqsWatchShape(sh)
	sqAwaitEqual(t, conn, sh, notify, clause, "snapshot")
	handle := sh.Stream().Handle()
	v.Stop()
	sqsExec(t, conn,
		`UPDATE grand SET flag = true WHERE id = 2`,  // parents 2, 3 move in
		`UPDATE grand SET flag = false WHERE id = 1`, // parent 1 moves out
		`UPDATE parent SET grand_id = 2 WHERE id = 4`,
		`INSERT INTO child VALUES (13, 2, 130)`,
	)
	v.Restart()
	sqAwaitEqual(t, conn, sh, notify, clause, "after restart")
	sqsExec(t, conn, `UPDATE grand SET flag = true WHERE id = 1`)
	sqAwaitEqual(t, conn, sh, notify, clause, "a move after restart")
	if got := sh.Stream().Handle(); got != handle {
		t.Fatalf("handle changed across restart: %s → %s", handle, got)
	}
	if r, _ := w.counts(); r != 0 {
		t.Fatalf("%d refetches across the restart, want 0", r)
	}
	sqsLogResyncs(t, v)
}

// TestSubqueryValuesLimit: with VOLT_MAX_SUBQUERY_VALUES=5, a shape whose
// subquery selects more values is refused with a 400 naming the limit
// (and leaves nothing behind: the same request is refused again, a
// narrower one works); a shape whose subquery grows past the limit is
// removed (409 for its clients) and its re-creation gets the 400.
func TestSubqueryValuesLimit(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE parent (id int PRIMARY KEY, value int)`,
		`CREATE TABLE child (id int PRIMARY KEY, parent_id int, value int)`,
		`INSERT INTO parent SELECT g, CASE WHEN g <= 3 THEN 1 ELSE 2 END FROM generate_series(1, 10) g`,
		`INSERT INTO child SELECT g, g, g FROM generate_series(1, 10) g`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s", "VOLT_MAX_SUBQUERY_VALUES=5")
	big := `parent_id IN (SELECT id FROM parent)`
	for i := range 2 {
		r := get(t, v.shapeURL("table", "child", "where", big, "offset", "-1"))
		if r.Status != 400 || !bytes.Contains(r.Body, []byte("more than 5 values")) || !bytes.Contains(r.Body, []byte("VOLT_MAX_SUBQUERY_VALUES")) {
			t.Fatalf("request %d over the limit: %d %s, want 400 naming the limit", i, r.Status, r.Body)
		}
	}
	small := `parent_id IN (SELECT id FROM parent WHERE value = 1)`
	f := newFollower(v, "table", "child", "where", small)
	f.catchUp(t)
	if len(f.rows) != 3 {
		t.Fatalf("narrow shape has %d rows, want 3", len(f.rows))
	}
	conn := sqsConn(t, db)
	sqsExec(t, conn, `UPDATE parent SET value = 1 WHERE id IN (4, 5)`) // 5 values: at the limit
	f.pollUntil(t, "two moves in", func(rows map[string]map[string]*string) bool { return len(rows) == 5 })
	sqsExec(t, conn, `UPDATE parent SET value = 1 WHERE id = 6`) // 6: past it
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := get(t, v.shapeURL("table", "child", "where", small, "handle", f.handle, "offset", f.offset, "live", "true"))
		if r.Status == 409 {
			break
		}
		if r.Status != 200 && r.Status != 204 {
			t.Fatalf("live request: %d %s", r.Status, r.Body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the shape past the limit was not removed")
		}
	}
	if r := get(t, v.shapeURL("table", "child", "where", small, "offset", "-1")); r.Status != 400 || !bytes.Contains(r.Body, []byte("more than 5 values")) {
		t.Fatalf("re-creation past the limit: %d %s, want 400", r.Status, r.Body)
	}
	if !strings.Contains(v.Log(), "subqueries hold more values than the limit") {
		t.Fatal("no log line for the removal")
	}
}

// TestSubqueryRestartDropsWhatItCannotResync: after a restart, a shape
// whose subquery table was dropped while volt was down, and a
// log=changes_only shape (whose clients' rows come from subsets the log
// does not hold), are removed: their clients get 409 (400 naming the
// dropped table for the first), never a wrong state.
func TestSubqueryRestartDropsWhatItCannotResync(t *testing.T) {
	db := sqParentChild(t)
	pgtest.Exec(t, db, `CREATE TABLE other (id int PRIMARY KEY)`, `INSERT INTO other VALUES (1)`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s")
	dropped := `parent_id IN (SELECT id FROM other)`
	type shapeAt struct{ where, log, handle, offset string }
	var shapes []shapeAt
	for _, s := range []shapeAt{{where: dropped, log: "full"}, {where: sqWhere, log: "changes_only"}} {
		f := newFollower(v, "table", "child", "where", s.where, "log", s.log)
		f.catchUp(t)
		s.handle, s.offset = f.handle, f.offset
		sqsAwaitCatalogued(t, v, s.handle)
		shapes = append(shapes, s)
	}
	v.Stop()
	pgtest.Exec(t, db, `DROP TABLE other`)
	v.Restart()
	for _, s := range shapes {
		r := get(t, v.shapeURL("table", "child", "where", s.where, "log", s.log, "handle", s.handle, "offset", s.offset))
		// A clause naming a dropped table is refused before its handle is
		// looked at (400 naming the table, as for a shape created before
		// the restart in the same run).
		gone := r.Status == 409 || (s.where == dropped && r.Status == 400 && bytes.Contains(r.Body, []byte(`other`)))
		if !gone {
			t.Fatalf("%s (log=%s) after restart: %d %s, want 409", s.where, s.log, r.Status, r.Body)
		}
	}
	if n := strings.Count(v.Log(), "discarding shape with subqueries"); n != 2 {
		t.Fatalf("%d shapes with subqueries discarded at restart, want 2", n)
	}
	// The changes_only shape comes back under a new handle.
	r := get(t, v.shapeURL("table", "child", "where", sqWhere, "log", "changes_only", "offset", "-1"))
	if r.Status != 200 || r.Header.Get("electric-handle") == shapes[1].handle {
		t.Fatalf("re-created changes_only shape: %d handle %q", r.Status, r.Header.Get("electric-handle"))
	}
}
