package auth_test

import (
	"testing"

	"github.com/voltsync/volt"
)

// TestRowRules exercises each form of rule through the handler: allowed
// operations, writable columns, the check on the old row and on the new
// row, and tables without a rule.
func TestRowRules(t *testing.T) {
	jc := fullConfig(t)
	e := newEnv(t, &jc, rulesJSON)
	alice, bob := hs256(t, claims("alice", nil)), hs256(t, claims("bob", nil))
	key := map[string]any{"id": "a1"}

	wantAccepted(t, e.post(alice, "alice", insert("todos", map[string]any{"id": "a1", "owner_id": "alice", "title": "mine"})))
	wantAccepted(t, e.post(bob, "bob", insert("todos", map[string]any{"id": "b1", "owner_id": "bob"})))
	// New row: inserting a row for someone else.
	wantForbidden(t, e.post(alice, "alice", insert("todos", map[string]any{"id": "a2", "owner_id": "bob"})))
	// Old row: bob edits or deletes alice's row.
	wantForbidden(t, e.post(bob, "bob", update("todos", key, map[string]any{"title": "hijacked"})))
	wantForbidden(t, e.post(bob, "bob", del("todos", key)))
	// New row: alice gives her row away.
	wantForbidden(t, e.post(alice, "alice", update("todos", key, map[string]any{"owner_id": "bob"})))
	// Columns: org is not writable, on insert or update.
	wantForbidden(t, e.post(alice, "alice", update("todos", key, map[string]any{"org": 7})))
	wantForbidden(t, e.post(alice, "alice", insert("todos", map[string]any{"id": "a3", "owner_id": "alice", "org": 7})))
	// An insert's key is written, so it must be writable too: id is listed.
	wantAccepted(t, e.post(alice, "alice", volt.Mutation{Op: volt.OpInsert, Table: "public.todos", Key: map[string]any{"id": "a4"}, Values: map[string]any{"owner_id": "alice"}}))
	wantAccepted(t, e.post(alice, "alice", update("todos", key, map[string]any{"title": "edited", "done": true})))
	wantAccepted(t, e.post(alice, "alice", del("todos", map[string]any{"id": "a4"})))
	if got := e.count(`SELECT count(*) FROM todos WHERE id = 'a1' AND owner_id = 'alice' AND title = 'edited' AND org IS NULL`); got != 1 {
		t.Fatalf("row a1 is not as alice left it")
	}
	if got := e.count(`SELECT count(*) FROM todos`); got != 2 {
		t.Fatalf("%d todos, want a1 and b1", got)
	}

	// Operations: todos allow all three, notes only inserts; a refused
	// operation rejects its whole transaction.
	admin := hs256(t, claims("alice", map[string]any{"role": "admin"}))
	wantForbidden(t, e.post(admin, "admin", insert("notes", map[string]any{"id": 1, "body": "x"}), update("notes", map[string]any{"id": 1}, map[string]any{"body": "y"})))
	wantAccepted(t, e.post(admin, "admin", insert("notes", map[string]any{"id": 1, "body": "x"})))
	wantForbidden(t, e.post(admin, "admin", del("notes", map[string]any{"id": 1})))
	if got := e.count(`SELECT count(*) FROM notes WHERE body = 'x'`); got != 1 {
		t.Fatalf("note 1: %d rows", got)
	}

	// Tables without a write rule, in any spelling and schema.
	for _, table := range []string{"secrets", "public.secrets", `"secrets"`, "readonly", "app.things", "volt.clients"} {
		wantForbidden(t, e.post(alice, "alice", insert(table, map[string]any{"id": 1})))
	}
	if got := e.count(`SELECT (SELECT count(*) FROM secrets) + (SELECT count(*) FROM readonly) + (SELECT count(*) FROM app.things)`); got != 0 {
		t.Fatalf("%d rows written to tables without a rule", got)
	}
}
