package localstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/client/localstore"
	"github.com/voltsync/volt/internal/pgtest"
)

// follow runs db.Sync of table until the test ends or stop is called.
func follow(t *testing.T, db *localstore.DB, url, table string) (stop func()) {
	t.Helper()
	return goUntilStopped(t, func(ctx context.Context) error {
		return db.Sync(ctx, lsClient(t, url), client.ShapeDef{Table: table}, table)
	})
}

// lsClient returns a Client of url that retries quickly.
func lsClient(t testing.TB, url string, opts ...client.Option) *client.Client {
	c, err := client.New(url, append([]client.Option{client.WithBackoff(20*time.Millisecond, time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// push runs a Syncer for db until the test ends or stop is called.
func push(t *testing.T, db *localstore.DB, url string) (stop func()) {
	t.Helper()
	s, err := db.NewSyncer(lsClient(t, url), localstore.SyncerOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second,
		OnError: func(err error) { t.Logf("syncer: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	return goUntilStopped(t, s.Run)
}

// goUntilStopped runs fn on a goroutine until stop (or the test's end)
// cancels its context and waits for it; fn failing before that fails the
// test.
func goUntilStopped(t *testing.T, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("stopped early: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// watchResults runs db.Watch of query on a goroutine and hands each
// result, as text, to the returned channel. The channel is unbuffered,
// so the watch waits in its callback until the test takes the result:
// every result the test sees was computed after the previous one was
// taken. stop cancels the watch and returns what Watch returned.
func watchResults(t *testing.T, db *localstore.DB, query string) (results <-chan string, stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan string)
	done := make(chan error, 1)
	go func() {
		done <- db.Watch(ctx, query, nil, func(rows *sql.Rows) error {
			s, err := rowsText(rows)
			if err != nil {
				return err
			}
			select {
			case out <- s:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Watch did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return out, stop
}

// countIs reports whether query, a count, gives n (false while the table
// does not exist yet).
func countIs(db *localstore.DB, query string, n int) bool {
	var got int
	return db.SQL().QueryRow(query).Scan(&got) == nil && got == n
}

// rowsText renders rows as "a|b; c|d".
func rowsText(rows *sql.Rows) (string, error) {
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return strings.Join(out, "; "), rows.Err()
}

const watchTimeout = 20 * time.Second

// nextResult fails unless the next result of the watch is want.
func nextResult(t *testing.T, results <-chan string, want string) {
	t.Helper()
	select {
	case got := <-results:
		if got != want {
			t.Fatalf("watch result:\n got %s\nwant %s", got, want)
		}
	case <-time.After(watchTimeout):
		t.Fatalf("watch did not fire; waiting for %s", want)
	}
}

// awaitResult takes results of the watch until one is want.
func awaitResult(t *testing.T, results <-chan string, want string) {
	t.Helper()
	timeout := time.After(watchTimeout)
	last := "(none)"
	for {
		select {
		case got := <-results:
			if got == want {
				return
			}
			last = got
		case <-timeout:
			t.Fatalf("watch did not fire with %s; last result %s", want, last)
		}
	}
}

// TestWatch checks that a watch fires with the initial result and after
// every change under its query (a local write, rows from the server, a
// rollback), not after writes to other tables, and ends with its context.
func TestWatch(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL, `CREATE TABLE notes (id text PRIMARY KEY, body text)`,
		`INSERT INTO todos(id, title) VALUES ('s1', 'from server')`)
	url := startVolt(t, dbURL)
	rbs := make(chan localstore.Rollback, 10)
	db, err := localstore.Open(filepath.Join(t.TempDir(), "store.db"), localstore.Options{OnRollback: func(r localstore.Rollback) { rbs <- r }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	zero := 0
	if err := db.Declare("notes", "notes", client.Schema{"id": {Type: "text", PKIndex: &zero}, "body": {Type: "text"}}); err != nil {
		t.Fatal(err)
	}
	follow(t, db, url, "todos")
	waitFor(t, 30*time.Second, "initial sync", func() bool { return countIs(db, `SELECT count(*) FROM todos`, 1) })

	// The overlay's size is part of the result, so that echoes and
	// rollbacks, which change it, are seen.
	results, stop := watchResults(t, db,
		`SELECT (SELECT count(*) FROM todos_local), id, title, coalesce(n, '-') FROM todos ORDER BY id`)
	nextResult(t, results, "0|s1|from server|-")

	// a write to a table the query does not read signals nothing (and
	// the next result is the next change's, not a stale rerun)
	update(t, db, `INSERT INTO notes(id, body) VALUES ('n1', 'elsewhere')`)
	if n := localstore.WatchSignalled(db); n != 0 {
		t.Fatalf("a write to notes signalled %d watch(es) of todos", n)
	}

	// (b) a row inserted in Postgres reaches the synced table
	pgtest.Exec(t, dbURL, `INSERT INTO todos(id, title) VALUES ('s2', 'from pg')`)
	nextResult(t, results, "0|s1|from server|-; 0|s2|from pg|-")

	// (a) a local write through the view, nothing else running: only the
	// write can fire the watch
	update(t, db, `UPDATE todos SET n = 'not a number' WHERE id = 's2'`)
	nextResult(t, results, "1|s1|from server|-; 1|s2|from pg|not a number")

	// (c) the server rejects it: the rollback empties the overlay, and
	// nothing else touches todos meanwhile (notes' write is accepted)
	stopPush := push(t, db, url)
	awaitResult(t, results, "0|s1|from server|-; 0|s2|from pg|-")
	select {
	case rb := <-rbs:
		if rb.Code != "invalid" || len(rb.Tables) != 1 || rb.Tables[0] != "todos" {
			t.Fatalf("rollback: %+v", rb)
		}
	case <-time.After(watchTimeout):
		t.Fatal("no rollback reported")
	}
	stopPush()

	// (a) again, the Syncer stopped: nothing but the write can show it
	update(t, db, `UPDATE todos SET title = 'edited' WHERE id = 's1'`)
	awaitResult(t, results, "1|s1|edited|-; 1|s2|from pg|-")

	// cancelling ends the watch and unregisters it
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch returned %v, want context.Canceled", err)
	}
	if n := localstore.Watchers(db); n != 0 {
		t.Fatalf("%d watch(es) still registered", n)
	}
}
