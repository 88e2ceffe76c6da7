package mutations_test

import (
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// fkSchema builds lists → items → notes with foreign keys that are
// deferrable or not.
func fkSchema(deferrable bool) []string {
	d := ""
	if deferrable {
		d = " DEFERRABLE"
	}
	return []string{
		`CREATE TABLE lists (id int PRIMARY KEY, name text)`,
		`CREATE TABLE items (id int PRIMARY KEY, list int NOT NULL REFERENCES lists` + d + `, title text)`,
		`CREATE TABLE notes (id int PRIMARY KEY, item int NOT NULL REFERENCES items` + d + `, body text)`,
	}
}

func TestForeignKeyOrder(t *testing.T) {
	for _, deferrable := range []bool{false, true} {
		name := "not deferrable"
		if deferrable {
			name = "deferrable"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, mutations.Options{}, fkSchema(deferrable)...)
			// Children before parents, grandchild first.
			wantAccepted(t, e.one("c", 1,
				ins("notes", row{"id": 1, "item": 10, "body": "n"}),
				ins("items", row{"id": 10, "list": 100, "title": "i"}),
				ins("items", row{"id": 11, "list": 100, "title": "j"}),
				ins("lists", row{"id": 100, "name": "l"})))
			// Parents deleted before children.
			wantAccepted(t, e.one("c", 2,
				del("lists", row{"id": 100}),
				del("items", row{"id": 10}),
				del("notes", row{"id": 1}),
				del("items", row{"id": 11})))
			if n := e.count(`SELECT (SELECT count(*) FROM lists) + (SELECT count(*) FROM items) + (SELECT count(*) FROM notes)`); n != 0 {
				t.Fatalf("%d rows left", n)
			}
			// Move an item to a list created later in the transaction, then
			// delete the old list.
			wantAccepted(t, e.one("c", 3, ins("lists", row{"id": 1}), ins("items", row{"id": 1, "list": 1})))
			wantAccepted(t, e.one("c", 4,
				del("lists", row{"id": 1}),
				upd("items", row{"id": 1}, row{"list": 2}),
				ins("lists", row{"id": 2})))
			// Same-table order is kept: insert then update of one row.
			wantAccepted(t, e.one("c", 5,
				ins("items", row{"id": 5, "list": 3, "title": "a"}), upd("items", row{"id": 5}, row{"title": "b"}), ins("lists", row{"id": 3})))
			if n := e.count(`SELECT count(*) FROM items WHERE id = 5 AND title = 'b'`); n != 1 {
				t.Fatal("same-table order not kept")
			}
			// A real violation is still a constraint rejection (at COMMIT
			// when deferred).
			r := e.one("c", 6, ins("items", row{"id": 6, "list": 999}))
			wantRejected(t, r, volt.CodeConstraint)
			if r.Constraint != "items_list_fkey" {
				t.Fatalf("constraint %q", r.Constraint)
			}
			if n := e.count(`SELECT count(*) FROM volt.receipts WHERE seq = 6 AND code = 'constraint'`); n != 1 {
				t.Fatal("no receipt for a commit-time violation")
			}
		})
	}
}

// TestSelfReferenceDeferrable: rows of one table referencing each other
// need a DEFERRABLE key (same-table order is the client's).
func TestSelfReferenceDeferrable(t *testing.T) {
	e := newEnv(t, mutations.Options{}, `CREATE TABLE tree (id int PRIMARY KEY, parent int REFERENCES tree DEFERRABLE)`)
	wantAccepted(t, e.one("c", 1, ins("tree", row{"id": 2, "parent": 1}), ins("tree", row{"id": 1})))
}
