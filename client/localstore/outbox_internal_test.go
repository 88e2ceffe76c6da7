package localstore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// TestPendingWithoutRows: Update writes no _volt_txns row; the Syncer
// takes up the oldest pending transactions, with rows (given back seqs
// included) or not, in order.
func TestPendingWithoutRows(t *testing.T) {
	db := openTest(t, Options{})
	for _, id := range []string{"a", "b", "c"} {
		exec(t, db, `INSERT INTO todos(id) VALUES ('`+id+`')`)
	}
	if got := queryRows(t, db, `SELECT count(*) FROM _volt_txns`); got != "0" {
		t.Fatalf("txns: %s", got)
	}
	batchOf := func(max int) string {
		t.Helper()
		s := &Syncer{db: db, opts: SyncerOptions{MaxBatch: max}}
		batch, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		return batchString(batch)
	}
	if got := batchOf(2); got != "[1 1 false 1] [2 2 false 1]" {
		t.Fatalf("first batch: %s", got)
	}
	if got := batchOf(2); got != "[1 1 true 1] [2 2 true 1]" {
		t.Fatalf("again: %s", got)
	}
	s := &Syncer{db: db}
	if err := s.giveBackSeqs(1); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO todos(id) VALUES ('d')`, `INSERT INTO todos(id) VALUES ('e')`)
	exec(t, db, `DELETE FROM todos WHERE id = 'a'`)
	if n, err := db.Pending(); err != nil || n != 5 {
		t.Fatalf("pending: %d %v", n, err)
	}
	if got := batchOf(4); got != "[1 1 false 1] [2 2 false 1] [3 3 false 1] [4 4 false 2]" {
		t.Fatalf("after give back: %s", got)
	}
	if got := batchOf(10); got != "[1 1 true 1] [2 2 true 1] [3 3 true 1] [4 4 true 2] [5 5 false 1]" {
		t.Fatalf("all: %s", got)
	}
	if got := queryRows(t, db, `SELECT group_concat(ltx || ':' || seq) FROM _volt_txns`); got != "1:1,2:2,3:3,4:4,5:5" {
		t.Fatalf("txns: %s", got)
	}
}

// batchString shows a Syncer batch as "[ltx seq sentBefore mutations] ...".
func batchString(batch []*outTx) string {
	var got []string
	for _, b := range batch {
		got = append(got, sprint([]any{b.ltx, b.seq, b.sentBefore, len(b.muts)}))
	}
	return strings.Join(got, " ")
}

// TestLtxNotReused: local transaction ids keep growing after every
// transaction is cleared and the store is opened again, and Updates that
// write nothing take none.
func TestLtxNotReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Declare("todos", "todos", todoSchema); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('a', 'one')`)
	exec(t, db, `SELECT 1`)
	exec(t, db, `UPDATE todos SET title = 'one' WHERE id = 'a'`) // changes nothing
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('b', 'two')`)
	if got := queryRows(t, db, `SELECT group_concat(DISTINCT ltx) FROM _volt_outbox`); got != "1,2" {
		t.Fatalf("outbox: %s", got)
	}
	s := &Syncer{db: db, opts: SyncerOptions{MaxBatch: 10}}
	batch, err := s.next()
	if err != nil || len(batch) != 2 {
		t.Fatal(batch, err)
	}
	if err := s.record(batch, []volt.MutationResult{{Seq: 1, Status: volt.StatusAccepted, Txid: 7}, {Seq: 2, Status: volt.StatusAccepted, Txid: 8}}); err != nil {
		t.Fatal(err)
	}
	applyChanges(t, db, &client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "one"}},
		&client.Change{Key: "b", Operation: volt.OpInsert, Value: client.Row{"id": "b", "title": "two"}, Txids: []uint32{7, 8}, Last: true})
	if got := queryRows(t, db, `SELECT (SELECT count(*) FROM _volt_txns), (SELECT count(*) FROM _volt_outbox), (SELECT ltx FROM _volt_flags)`); got != "0|0|2" {
		t.Fatalf("after echo: %s", got)
	}
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec(t, db, `DELETE FROM todos WHERE id = 'a'`)
	if got := queryRows(t, db, `SELECT ltx, id FROM _volt_outbox`); got != "3|1" {
		t.Fatalf("after reopen: %s", got)
	}
}

// TestViewWriteOutsideUpdate: a write to a view that does not go through
// Update fails instead of joining some other local transaction.
func TestViewWriteOutsideUpdate(t *testing.T) {
	db := openTest(t, Options{})
	_, err := db.SQL().Exec(`INSERT INTO todos(id, title) VALUES ('a', 'x')`)
	if err == nil || !strings.Contains(err.Error(), "inside DB.Update") {
		t.Fatalf("write outside Update: %v", err)
	}
	if got := queryRows(t, db, `SELECT (SELECT count(*) FROM todos_local), (SELECT count(*) FROM _volt_outbox)`); got != "0|0" {
		t.Fatalf("after: %s", got)
	}
}
