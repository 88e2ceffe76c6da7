package localstore_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/client/localstore"
	"github.com/voltsync/volt/internal/pgtest"
)

// columns returns the columns of a local table or view.
func columns(t *testing.T, db *localstore.DB, table string) []string {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT name FROM pragma_table_info(?) ORDER BY name`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestSchemaChange alters a synced table on the server while local
// writes wait unsent: the store rebuilds the table, view and triggers,
// keeps the writes that still fit (and sends them later), and rolls back
// the one that sets a dropped column, saying so.
func TestSchemaChange(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL, `INSERT INTO todos(id, title, n) VALUES ('s1', 'one', 1), ('s2', 'two', 2), ('s3', 'three', 3)`)
	url := startVolt(t, dbURL)
	rbs := make(chan localstore.Rollback, 10)
	db, err := localstore.Open(filepath.Join(t.TempDir(), "store.db"), localstore.Options{OnRollback: func(r localstore.Rollback) { rbs <- r }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	follow(t, db, url, "todos")
	waitFor(t, 30*time.Second, "initial sync", func() bool { return countIs(db, `SELECT count(*) FROM todos`, 3) })

	// unsent local writes: no Syncer runs yet
	update(t, db, `UPDATE todos SET title = 'kept' WHERE id = 's1'`)
	update(t, db, `UPDATE todos SET n = 20 WHERE id = 's2'`)
	update(t, db, `INSERT INTO todos(id, title) VALUES ('l1', 'local')`)
	noRollback := func(when string) {
		t.Helper()
		select {
		case rb := <-rbs:
			t.Fatalf("%s: unexpected rollback %+v", when, rb)
		default:
		}
	}

	// a column added: the table is rebuilt, every write still fits
	pgtest.Exec(t, dbURL, `ALTER TABLE todos ADD COLUMN prio int NOT NULL DEFAULT 5`,
		`UPDATE todos SET title = 'three (1)' WHERE id = 's3'`) // the next change carries the new relation
	waitFor(t, 30*time.Second, "prio synced", func() bool {
		return countIs(db, `SELECT count(*) FROM todos WHERE prio = 5 AND title = 'three (1)'`, 1)
	})
	for _, tbl := range []string{"todos", "todos_synced", "todos_local"} {
		if got := columns(t, db, tbl); !slices.Contains(got, "prio") {
			t.Fatalf("%s after ADD COLUMN: %v", tbl, got)
		}
	}
	if got := queryText(t, db, `SELECT id, title, n, coalesce(prio, '-') FROM todos ORDER BY id`); got != "l1|local|<nil>|-; s1|kept|1|5; s2|two|20|5; s3|three (1)|3|5" {
		t.Fatalf("view after ADD COLUMN: %s", got)
	}
	if p, err := db.Pending(); err != nil || p != 3 {
		t.Fatalf("pending after ADD COLUMN: %d %v", p, err)
	}
	noRollback("after ADD COLUMN")

	// a column dropped that one pending write sets: that write is rolled
	// back, the others stay pending
	pgtest.Exec(t, dbURL, `ALTER TABLE todos DROP COLUMN n`, `UPDATE todos SET title = 'three (2)' WHERE id = 's3'`)
	select {
	case rb := <-rbs:
		if rb.Code != localstore.CodeSchema || rb.Seq != 0 || !strings.Contains(rb.Message, "column n ") ||
			!slices.Equal(rb.Tables, []string{"todos"}) {
			t.Fatalf("rollback: %+v", rb)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no rollback after DROP COLUMN")
	}
	waitFor(t, 30*time.Second, "n dropped", func() bool { return countIs(db, `SELECT count(*) FROM todos WHERE title = 'three (2)'`, 1) })
	want := []string{"done", "id", "meta", "prio", "title"}
	for _, tbl := range []string{"todos", "todos_synced"} {
		if got := columns(t, db, tbl); !slices.Equal(got, want) {
			t.Fatalf("%s after DROP COLUMN: %v, want %v", tbl, got, want)
		}
	}
	if got := queryText(t, db, `SELECT id, title, coalesce(prio, '-') FROM todos ORDER BY id`); got != "l1|local|-; s1|kept|5; s2|two|5; s3|three (2)|5" {
		t.Fatalf("view after DROP COLUMN: %s", got)
	}
	if p, err := db.Pending(); err != nil || p != 2 {
		t.Fatalf("pending after DROP COLUMN: %d %v", p, err)
	}

	// the writes that fit reach Postgres, and come back
	push(t, db, url)
	waitFor(t, 30*time.Second, "writes in Postgres", func() bool {
		return pgCount(t, dbURL, `SELECT count(*) FROM todos WHERE (id = 's1' AND title = 'kept') OR (id = 'l1' AND title = 'local' AND prio = 5)`) == 2
	})
	waitFor(t, 30*time.Second, "overlay cleared", func() bool {
		p, _ := db.Pending()
		return p == 0 && countIs(db, `SELECT count(*) FROM todos_local`, 0) && countIs(db, `SELECT count(*) FROM todos WHERE prio = 5`, 4)
	})
	noRollback("after sending")
}

// queryText runs query and renders its rows as "a|b; c|d".
func queryText(t *testing.T, db *localstore.DB, query string) string {
	t.Helper()
	rows, err := db.SQL().Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	s, err := rowsText(rows)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
