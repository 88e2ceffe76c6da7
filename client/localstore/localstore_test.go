package localstore

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

func intp(i int) *int { return &i }

var todoSchema = client.Schema{
	"id":    {Type: "text", PKIndex: intp(0), NotNull: true},
	"title": {Type: "text"},
	"done":  {Type: "bool"},
	"meta":  {Type: "jsonb"},
}

func openTest(t *testing.T, opts Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "store.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Declare("todos", "todos", todoSchema); err != nil {
		t.Fatal(err)
	}
	return db
}

func exec(t *testing.T, db *DB, stmts ...string) {
	t.Helper()
	err := db.Update(func(tx *Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func queryRows(t *testing.T, db *DB, query string) string {
	t.Helper()
	rows, err := db.SQL().Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts = append(parts, strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " ")))
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return strings.Join(out, "; ")
}

func fmtAny(v any) string {
	if v == nil {
		return "NULL"
	}
	return strings.TrimSpace(strings.Trim(strings.ReplaceAll(strings.ReplaceAll(sprint(v), "[", ""), "]", ""), " "))
}

func applyChanges(t *testing.T, db *DB, events ...client.Event) {
	t.Helper()
	if err := db.applyBatch("todos", "todos", todoSchema, client.Batch{Events: events, Handle: "h1", Offset: "0_0"}); err != nil {
		t.Fatal(err)
	}
}

func TestOverlayAndOutbox(t *testing.T) {
	db := openTest(t, Options{})
	applyChanges(t, db,
		&client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "server a", "done": false}},
		&client.Change{Key: "b", Operation: volt.OpInsert, Value: client.Row{"id": "b", "title": "server b", "done": true}},
		&client.UpToDate{LSN: 10})
	exec(t, db, `INSERT INTO todos(id, title, done, meta) VALUES ('c', 'local c', 0, '{"x":1}')`,
		`UPDATE todos SET done = 1 WHERE id = 'a'`)
	exec(t, db, `DELETE FROM todos WHERE id = 'b'`)
	if got, want := queryRows(t, db, `SELECT id, title, done FROM todos ORDER BY id`), "a|server a|1; c|local c|1"; got != want {
		// c's done is 0
		if got != "a|server a|1; c|local c|0" {
			t.Fatalf("view: %s", got)
		}
	}
	if got := queryRows(t, db, `SELECT ltx, op, key, vals FROM _volt_outbox ORDER BY id`); !strings.Contains(got, `{"done":true}`) || !strings.Contains(got, `"meta":{"x":1}`) {
		t.Fatalf("outbox: %s", got)
	}
	// a server change to another column of a keeps the local done on top
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpUpdate, Value: client.Row{"id": "a", "title": "server a2"}})
	if got := queryRows(t, db, `SELECT title, done FROM todos WHERE id = 'a'`); got != "server a2|1" {
		t.Fatalf("merge: %s", got)
	}
	// the app cannot write the synced table
	err := db.Update(func(tx *Tx) error {
		_, err := tx.Exec(`UPDATE todos_synced SET title = 'x'`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write to synced: %v", err)
	}
	// a duplicate insert fails like a unique constraint
	err = db.Update(func(tx *Tx) error {
		_, err := tx.Exec(`INSERT INTO todos(id, title) VALUES ('a', 'dup')`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("duplicate insert: %v", err)
	}
}

func TestEchoClearsOverlay(t *testing.T) {
	db := openTest(t, Options{})
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('a', 'one')`)
	exec(t, db, `UPDATE todos SET title = 'two' WHERE id = 'a'`)
	s := &Syncer{db: db, opts: SyncerOptions{MaxBatch: 10}}
	batch, err := s.next()
	if err != nil || len(batch) != 2 || batch[0].seq != 1 || batch[1].seq != 2 {
		t.Fatalf("batch %v %v", batch, err)
	}
	if err := s.record(batch[:1], []volt.MutationResult{{Seq: 1, Status: volt.StatusAccepted, Txid: 100}}); err != nil {
		t.Fatal(err)
	}
	// echo of the first write: the overlay stays (its last write is the second)
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "one"}, Txids: []uint32{100}, Last: true})
	if got := queryRows(t, db, `SELECT title FROM todos`); got != "two" {
		t.Fatalf("after first echo: %s", got)
	}
	if err := s.record(batch[1:], []volt.MutationResult{{Seq: 2, Status: volt.StatusAccepted, Txid: 101, LSN: "50"}}); err != nil {
		t.Fatal(err)
	}
	if got := queryRows(t, db, `SELECT count(*) FROM todos_local`); got != "1" {
		t.Fatalf("overlay cleared before its echo: %s", got)
	}
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpUpdate, Value: client.Row{"id": "a", "title": "two"}, Txids: []uint32{101}, Last: true})
	if got := queryRows(t, db, `SELECT (SELECT count(*) FROM todos_local), (SELECT count(*) FROM _volt_txns), (SELECT count(*) FROM _volt_outbox), (SELECT title FROM todos)`); got != "0|0|0|two" {
		t.Fatalf("after echo: %s", got)
	}
}

func TestRejectionRollsBackDependents(t *testing.T) {
	var rbs []Rollback
	db := openTest(t, Options{OnRollback: func(r Rollback) { rbs = append(rbs, r) }})
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "server"}})
	exec(t, db, `UPDATE todos SET title = 'mine' WHERE id = 'a'`)
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('b', 'b')`)
	s := &Syncer{db: db, opts: SyncerOptions{MaxBatch: 2}}
	batch, err := s.next()
	if err != nil {
		t.Fatal(err)
	}
	exec(t, db, `UPDATE todos SET done = 1 WHERE id = 'a'`) // unsent, depends on the first
	if err := s.record(batch, []volt.MutationResult{{Seq: 1, Status: volt.StatusRejected, Code: "conflict", Message: "no"}, {Seq: 2, Status: volt.StatusAccepted, Txid: 5}}); err != nil {
		t.Fatal(err)
	}
	if got := queryRows(t, db, `SELECT id, title, done FROM todos ORDER BY id`); got != "a|server|NULL; b|b|NULL" {
		t.Fatalf("after rollback: %s", got)
	}
	if len(rbs) != 2 {
		t.Fatalf("rollbacks: %+v", rbs)
	}
	if got := queryRows(t, db, `SELECT count(*) FROM _volt_txns WHERE state = 'pending'`); got != "0" {
		t.Fatalf("pending: %s", got)
	}
}

func TestResetAndDiscard(t *testing.T) {
	db := openTest(t, Options{})
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "server"}})
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('b', 'local')`)
	if err := db.ResetSynced("todos"); err != nil {
		t.Fatal(err)
	}
	if got := queryRows(t, db, `SELECT id FROM todos`); got != "b" {
		t.Fatalf("after reset: %s", got)
	}
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "server"}})
	if err := db.DiscardLocal("todos"); err != nil {
		t.Fatal(err)
	}
	if got := queryRows(t, db, `SELECT id FROM todos; `) + queryRows(t, db, `SELECT count(*) FROM _volt_outbox`); got != "a0" {
		t.Fatalf("after discard: %s", got)
	}
}

func TestSecondProcessLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}
