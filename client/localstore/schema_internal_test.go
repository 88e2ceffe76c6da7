package localstore

import (
	"strings"
	"testing"

	"github.com/voltsync/volt/client"
)

// TestRebuildRejectsOnlyWritesOfDroppedColumns: an insert carries every
// column, NULLs included; only a value it sets in a dropped column makes
// it unfit, as does an update of that column.
func TestRebuildRejectsOnlyWritesOfDroppedColumns(t *testing.T) {
	var rbs []Rollback
	db := openTest(t, Options{OnRollback: func(r Rollback) { rbs = append(rbs, r) }})
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('a', 'no meta')`)
	exec(t, db, `INSERT INTO todos(id, meta) VALUES ('b', '{"x":1}')`)
	exec(t, db, `UPDATE todos SET meta = '{"y":2}' WHERE id = 'a'`)
	newSchema := client.Schema{"id": todoSchema["id"], "title": todoSchema["title"], "done": todoSchema["done"]}
	if err := db.Declare("todos", "todos", newSchema); err != nil {
		t.Fatal(err)
	}
	if len(rbs) != 2 {
		t.Fatalf("rollbacks: %+v", rbs)
	}
	for _, rb := range rbs {
		if rb.Code != CodeSchema || !strings.Contains(rb.Message, "column meta ") || rb.LocalTx == 1 {
			t.Fatalf("rollback: %+v", rb)
		}
	}
	if got := queryRows(t, db, `SELECT id, title FROM todos`); got != "a|no meta" {
		t.Fatalf("view: %s", got)
	}
	if got := queryRows(t, db, `SELECT DISTINCT ltx FROM _volt_outbox`); got != "1" {
		t.Fatalf("pending: %s", got)
	}
}
