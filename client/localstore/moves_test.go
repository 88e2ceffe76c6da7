package localstore_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/client/localstore"
	"github.com/voltsync/volt/internal/pgtest"
)

const mvWhere = "parent_id IN (SELECT id FROM parent WHERE value = 1)"

// mvSync runs db.Sync of child with mvWhere until the returned stop is
// called (or the test ends).
func mvSync(t *testing.T, db *localstore.DB, url string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := db.Sync(ctx, lsClient(t, url), client.ShapeDef{Table: "child", Where: mvWhere}, "child")
		if err != nil && ctx.Err() == nil {
			t.Errorf("Sync: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// mvServer returns the rows of the shape in Postgres, as "id:title,…".
func mvServer(t *testing.T, dbURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, `SELECT coalesce(string_agg(id::text || ':' || title, ',' ORDER BY id), '') FROM child WHERE `+mvWhere).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const mvLocalQuery = `SELECT coalesce(group_concat(x, ','), '') FROM (SELECT id || ':' || title AS x FROM child ORDER BY id)`

// mvWaitLocal waits, on db's change signals (Watch), until the view child
// reads want; it fails with what it last read after 30 s.
func mvWaitLocal(t *testing.T, db *localstore.DB, what, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(context.Background(), 30*time.Second, errors.New("timeout"))
	defer cancel()
	var last string
	matched := errors.New("matched")
	err := db.Watch(ctx, mvLocalQuery, nil, func(rows *sql.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&last); err != nil {
				return err
			}
		}
		if last == want {
			return matched
		}
		return nil
	})
	if !errors.Is(err, matched) {
		t.Fatalf("%s: local view %q, want %q (%v)", what, last, want, err)
	}
}

func mvLocal(t *testing.T, db *localstore.DB) string {
	t.Helper()
	var s string
	if err := db.SQL().QueryRow(mvLocalQuery).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSyncAppliesMoves follows a shape with a subquery: rows move in and
// out of the local view as their parent enters and leaves the subquery,
// also when the store restarts between a move-in and the move-out.
func TestSyncAppliesMoves(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL,
		`CREATE TABLE parent (id int PRIMARY KEY, value int NOT NULL)`,
		`CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, title text NOT NULL)`,
		`INSERT INTO parent VALUES (1, 1), (2, 0), (3, 1)`,
		`INSERT INTO child VALUES (10, 1, 'a'), (11, 1, 'b'), (20, 2, 'c'), (21, 2, 'd'), (30, 3, 'e')`)
	url := startVolt(t, dbURL)
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := localstore.Open(path, localstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := mvSync(t, db, url)
	// (no change signal exists before Sync has created the table)
	waitFor(t, 30*time.Second, "table child", func() bool {
		return localCount(t, db, `SELECT count(*) FROM sqlite_schema WHERE name = 'child'`) == 1
	})
	want := mvServer(t, dbURL)
	if want != "10:a,11:b,30:e" {
		t.Fatalf("server rows %q", want)
	}
	mvWaitLocal(t, db, "initial sync", want)

	// move-in: parent 2 enters the subquery
	pgtest.Exec(t, dbURL, `UPDATE parent SET value = 1 WHERE id = 2`)
	want = mvServer(t, dbURL)
	if want != "10:a,11:b,20:c,21:d,30:e" {
		t.Fatalf("server rows %q", want)
	}
	mvWaitLocal(t, db, "move-in", want)

	// restart the store between the move-in and the move-out
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = localstore.Open(path, localstore.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after mvSync's cleanup
	if n := localCount(t, db, `SELECT count(*) FROM _volt_row_tags WHERE tbl = 'child'`); n != 5 {
		t.Fatalf("%d rows with tags stored, want 5", n)
	}
	mvSync(t, db, url)

	// move-out of the rows that moved in before the restart
	pgtest.Exec(t, dbURL, `UPDATE parent SET value = 0 WHERE id = 2`)
	want = mvServer(t, dbURL)
	if want != "10:a,11:b,30:e" {
		t.Fatalf("server rows %q", want)
	}
	mvWaitLocal(t, db, "move-out after restart", want)
	if n := localCount(t, db, `SELECT count(*) FROM _volt_row_tags WHERE tbl = 'child'`); n != 3 {
		t.Fatalf("%d rows with tags stored after the move-out, want 3", n)
	}

	// move-out of rows of the initial snapshot, one with a pending local
	// write: the synced rows go, the overlay keeps the written row in
	// the view (as for a synced delete) until the server has taken the
	// write and the shape has passed it; then the row is out.
	update(t, db, `UPDATE child SET title = 'mine' WHERE id = 10`)
	pgtest.Exec(t, dbURL, `UPDATE parent SET value = 0 WHERE id = 1`)
	if got := mvServer(t, dbURL); got != "30:e" {
		t.Fatalf("server rows %q", got)
	}
	mvWaitLocal(t, db, "move-out with a local write", "10:mine,30:e")
	if n := localCount(t, db, `SELECT count(*) FROM child_synced`); n != 1 {
		t.Fatalf("%d synced rows after the move-out, want 1", n)
	}
	push(t, db, url)
	waitFor(t, 30*time.Second, "local write in Postgres", func() bool {
		return pgCount(t, dbURL, `SELECT count(*) FROM child WHERE id = 10 AND title = 'mine'`) == 1
	})
	waitFor(t, 30*time.Second, "write decided", func() bool {
		n, err := db.Pending()
		return err == nil && n == 0
	})
	pgtest.Exec(t, dbURL, `UPDATE child SET title = 'f' WHERE id = 30`) // the shape passes the write's LSN
	want = mvServer(t, dbURL)
	if want != "30:f" {
		t.Fatalf("server rows %q", want)
	}
	mvWaitLocal(t, db, "local write settled", want)
	if got := mvLocal(t, db); strings.Contains(got, "10:") {
		t.Fatalf("local view %q", got)
	}

	// and a move-in brings the row back with the server's values
	pgtest.Exec(t, dbURL, `UPDATE parent SET value = 1 WHERE id = 1`)
	want = mvServer(t, dbURL)
	if want != "10:mine,11:b,30:f" {
		t.Fatalf("server rows %q", want)
	}
	mvWaitLocal(t, db, "move-in again", want)
}
