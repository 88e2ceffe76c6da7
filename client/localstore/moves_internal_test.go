package localstore

import (
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// TestMovesPersistConditions applies moves of a shape with two disjuncts
// (x IN (…) OR y IN (…)): a move-in insert of a present row is an upsert,
// a move-out removes only the rows left in no disjunct, and the active
// conditions a move changed are what the tracker has after a restart.
func TestMovesPersistConditions(t *testing.T) {
	db := openTest(t, Options{})
	applyChanges(t, db,
		&client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "a1", "done": false},
			Tags: []string{"x/", "/y"}, ActiveConditions: []bool{true, true}},
		&client.Change{Key: "b", Operation: volt.OpInsert, Value: client.Row{"id": "b", "title": "b1", "done": false},
			Tags: []string{"x/", "/z"}, ActiveConditions: []bool{true, false}},
		&client.Change{Key: "c", Operation: volt.OpInsert, Value: client.Row{"id": "c", "title": "c1", "done": false}},
		&client.Change{Key: "a", Operation: volt.OpInsert, Value: client.Row{"id": "a", "title": "a2", "done": true},
			Tags: []string{"x/", "/y"}, ActiveConditions: []bool{true, true}, IsMoveIn: true},
		&client.UpToDate{})
	if got := queryRows(t, db, `SELECT id, title, done FROM todos_synced ORDER BY id`); got != "a|a2|1; b|b1|0; c|c1|0" {
		t.Fatalf("synced rows: %s", got)
	}
	if got := queryRows(t, db, `SELECT key, tags, conds FROM _volt_row_tags ORDER BY key`); got != `a|"/y","x/"|true,true; b|"/z","x/"|true,false` {
		t.Fatalf("row tags: %s", got)
	}

	// x leaves: b is in no disjunct any more, a still is by y
	applyChanges(t, db, &client.Move{Kind: client.MoveOut, Patterns: []client.MovePattern{{Pos: 0, Value: "x"}}}, &client.UpToDate{})
	if got := queryRows(t, db, `SELECT id FROM todos_synced ORDER BY id`); got != "a; c" {
		t.Fatalf("synced rows after moving x out: %s", got)
	}
	if got := queryRows(t, db, `SELECT key, conds FROM _volt_row_tags ORDER BY key`); got != "a|false,true" {
		t.Fatalf("row tags after moving x out: %s", got)
	}

	// a restart of Sync loads the tracker from the store: y leaving now
	// takes a out
	db.wmu.Lock()
	db.forgetMoves("todos")
	db.wmu.Unlock()
	applyChanges(t, db, &client.Move{Kind: client.MoveOut, Patterns: []client.MovePattern{{Pos: 1, Value: "y"}}}, &client.UpToDate{})
	if got := queryRows(t, db, `SELECT id FROM todos_synced ORDER BY id`); got != "c" {
		t.Fatalf("synced rows after moving y out: %s", got)
	}

	// a must-refetch forgets the tags
	applyChanges(t, db, &client.Change{Key: "d", Operation: volt.OpInsert, Value: client.Row{"id": "d", "title": "d", "done": false},
		Tags: []string{"x/", "/y"}, ActiveConditions: []bool{true, true}})
	applyChanges(t, db, &client.MustRefetch{})
	if got := queryRows(t, db, `SELECT count(*) FROM _volt_row_tags`); got != "0" {
		t.Fatalf("row tags after a must-refetch: %s", got)
	}
}
