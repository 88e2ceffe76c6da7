package localstore

import (
	"sort"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// TestRollbackTransitive: a rejected transaction takes the later unsent
// ones that touched its rows, and those that touched theirs, but not a
// sent one, nor one that only touched a row of a transaction that stays;
// the overlay rows come back to the writes that remain.
func TestRollbackTransitive(t *testing.T) {
	var rbs []Rollback
	db := openTest(t, Options{OnRollback: func(r Rollback) { rbs = append(rbs, r) }})
	applyChanges(t, db,
		&client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "server a"}},
		&client.Change{Key: "b", Operation: volt.OpInsert, Value: client.Row{"id": "b", "title": "server b"}},
		&client.Change{Key: "x", Operation: volt.OpInsert, Value: client.Row{"id": "x", "title": "server x"}})
	exec(t, db, `UPDATE todos SET title = 'a1' WHERE id = 'a'`, `UPDATE todos SET title = 'x1' WHERE id = 'x'`) // 1
	exec(t, db, `UPDATE todos SET title = 'a2' WHERE id = 'a'`)                                                 // 2
	s := &Syncer{db: db, opts: SyncerOptions{MaxBatch: 2}}
	batch, err := s.next()
	if err != nil || len(batch) != 2 {
		t.Fatal(batch, err)
	}
	exec(t, db, `UPDATE todos SET title = 'a3', done = 1 WHERE id = 'a'`, `UPDATE todos SET title = 'b3' WHERE id = 'b'`) // 3: on 2
	exec(t, db, `UPDATE todos SET title = 'b4' WHERE id = 'b'`)                                                           // 4: on 3
	exec(t, db, `UPDATE todos SET title = 'x5' WHERE id = 'x'`)                                                           // 5: on 1, stays
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('c', 'c6')`)                                                        // 6
	if err := s.record(batch, []volt.MutationResult{{Seq: 1, Status: volt.StatusAccepted, Txid: 9}, {Seq: 2, Status: volt.StatusRejected, Code: "conflict", Message: "no"}}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(rbs, func(i, j int) bool { return rbs[i].LocalTx < rbs[j].LocalTx })
	var got []string
	for _, r := range rbs {
		got = append(got, sprint([]any{r.LocalTx, r.Seq, r.Code, r.Message, r.Tables}))
	}
	want := []string{
		"[2 2 conflict no [todos]]",
		"[3 0 dependent touches a row of rolled back local transaction 2 [todos]]",
		"[4 0 dependent touches a row of rolled back local transaction 3 [todos]]",
	}
	if sprint(got) != sprint(want) {
		t.Fatalf("rollbacks:\n got %q\nwant %q", got, want)
	}
	check := func(query, want string) {
		t.Helper()
		if got := queryRows(t, db, query); got != want {
			t.Fatalf("%s:\n got %s\nwant %s", query, got, want)
		}
	}
	check(`SELECT id, title, done FROM todos ORDER BY id`, "a|a1|NULL; b|server b|NULL; c|c6|NULL; x|x5|NULL")
	check(`SELECT id, write_id, changed_columns FROM todos_local ORDER BY id`, "a|1|,title,; c|6|,id,done,meta,title,; x|5|,title,")
	check(`SELECT ltx, coalesce(seq, 0), state FROM _volt_txns ORDER BY ltx`, "1|1|accepted")
	if n, err := db.Pending(); err != nil || n != 2 { // 5 and 6
		t.Fatalf("pending: %d %v", n, err)
	}
	check(`SELECT group_concat(ltx) FROM (SELECT ltx FROM _volt_outbox ORDER BY ltx, id)`, "1,1,5,6")
}
