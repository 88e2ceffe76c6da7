package localstore

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/voltsync/volt/client"

	"github.com/voltsync/volt"
)

// TestWatchSignals checks which commits signal a watch of todos: Sync
// batches that change rows or refetch do, a batch that only says "up to
// date" (every idle long poll) does not, nor a write to another table.
func TestWatchSignals(t *testing.T) {
	db := openTest(t, Options{})
	if err := db.Declare("notes", "notes", client.Schema{"id": {Type: "text", PKIndex: intp(0)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// counts is unbuffered: the watch waits in its callback until the
	// test takes the result.
	counts := make(chan int)
	done := make(chan error, 1)
	go func() {
		done <- db.Watch(ctx, `SELECT count(*) FROM todos`, nil, func(rows *sql.Rows) error {
			var n int
			for rows.Next() {
				if err := rows.Scan(&n); err != nil {
					return err
				}
			}
			select {
			case counts <- n:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	next := func(step string, want int) {
		t.Helper()
		select {
		case n := <-counts:
			if n != want {
				t.Fatalf("after %s: the next result is %d, want %d", step, n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("after %s: the watch did not fire", step)
		}
	}
	next("start", 0)
	// A spurious signal is either still pending, or taken and followed
	// by a stale result (0) ahead of the next change's.
	applyChanges(t, db, &client.UpToDate{LSN: 20})
	exec(t, db, `INSERT INTO notes(id) VALUES ('n')`)
	if n := WatchSignalled(db); n != 0 {
		t.Fatalf("an up-to-date batch or a write to notes signalled the watch (%d)", n)
	}
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a"}}, &client.UpToDate{LSN: 30})
	next("a synced row", 1)
	applyChanges(t, db, &client.MustRefetch{Handle: "h2"})
	next("a must-refetch", 0)
}
