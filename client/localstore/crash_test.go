package localstore_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voltsync/volt/client/localstore"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// TestCrashNothingLostNothingDoubled kills a child process that writes to
// the store at random points (and, by its own hand, right after the
// server answered a write), restarts it, and checks that every write it
// committed locally ends up in Postgres exactly once.
func TestCrashNothingLostNothingDoubled(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL,
		`CREATE TABLE applied (id text, at timestamptz DEFAULT now())`,
		`CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO applied(id) VALUES (NEW.id); RETURN NEW; END $$`,
		`CREATE TRIGGER note AFTER INSERT OR UPDATE ON todos FOR EACH ROW EXECUTE FUNCTION note()`,
		// volt answers an accepted write once replication has delivered
		// its commit (up to 2 s, one transaction after the other). The
		// test cluster runs synchronous_commit=off, where the WAL reaches
		// the walsender only at the WAL writer's next flush (every
		// 200 ms): the queue would drain at 5 transactions a second, and
		// the hundreds the children write would take minutes. Postgres'
		// default (on) flushes, and wakes the walsender, at each commit.
		`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', current_database()); END $$`)
	url := startVolt(t, dbURL)
	path := filepath.Join(t.TempDir(), "store.db")
	committed := map[string]bool{}
	next := 0
	rng := testseed.Rand(t, 1) // the kill delays; the children's own timing is not replayable
	for iter := 0; iter < 8; iter++ {
		killAfterResponse := iter%2 == 1
		ids, n := runCrashChild(t, path, url, next, killAfterResponse, time.Duration(200+rng.IntN(800))*time.Millisecond)
		for _, id := range ids {
			committed[id] = true
		}
		next = n
	}
	// a last, peaceful run drains the outbox
	db, err := localstore.Open(path, localstore.Options{OnRollback: func(r localstore.Rollback) { t.Errorf("rollback: %+v", r) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after running's cleanup: Sync must not see a closed store
	pending, _ := db.Pending()
	start := time.Now()
	running(t, db, url, "todos")
	waitFor(t, 2*time.Minute, "outbox drained", func() bool {
		p, _ := db.Pending()
		return p == 0
	})
	for id := range committed {
		if c := pgCount(t, dbURL, `SELECT count(*) FROM applied WHERE id = '`+id+`'`); c != 1 {
			t.Errorf("write %s applied %d times", id, c)
		}
	}
	if extra := pgCount(t, dbURL, `SELECT count(*) FROM applied`) - len(committed); extra < 0 || extra > 8 {
		t.Errorf("%d applied writes that no child reported committed (at most one per kill expected)", extra)
	}
	if len(committed) < 20 {
		t.Errorf("only %d writes committed", len(committed))
	}
	t.Logf("%d writes over 8 kills; the last run sent %d pending transactions in %v", len(committed), pending, time.Since(start).Round(time.Millisecond))
}

// runCrashChild starts the helper, reads the ids it reports committed
// and kills it after d (unless it kills itself first).
func runCrashChild(t *testing.T, path, url string, start int, killAfterResponse bool, d time.Duration) ([]string, int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOCALSTORE_HELPER=crash", "LS_PATH="+path, "LS_URL="+url,
		"LS_START="+strconv.Itoa(start), "LS_KILL_AFTER_RESPONSE="+strconv.FormatBool(killAfterResponse))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(d, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	defer timer.Stop()
	var ids []string
	next := start
	sc := bufio.NewScanner(out)
	opened := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "open":
			opened = true
			// a second process on the same store gets a clear error
			if _, err := localstore.Open(path, localstore.Options{}); !errors.Is(err, localstore.ErrLocked) {
				t.Errorf("second open while the child runs: %v", err)
			}
		case strings.HasPrefix(line, "ok "):
			id := strings.TrimPrefix(line, "ok ")
			ids = append(ids, id)
			k, _ := strconv.Atoi(strings.TrimPrefix(id, "w"))
			next = k + 1
		case strings.HasPrefix(line, "rollback "):
			t.Errorf("child: %s", line)
		}
	}
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait()
	if !opened {
		t.Log("child killed before it opened the store")
	}
	// ids the child may have committed without reporting: skip one
	return ids, next + 1
}
