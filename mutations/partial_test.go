package mutations_test

import (
	"context"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// TestRejectedAfterALockedRowChangesNothing: with a Check, an update reads
// and locks its row before it is written, so it runs before the
// statements after it are queued. When a later mutation of the same
// transaction is refused while its statement is built (an object for a
// text column), the update must be undone with the rest: the old code
// recorded the rejection and committed the update.
func TestRejectedAfterALockedRowChangesNothing(t *testing.T) {
	allow := func(context.Context, any, volt.Mutation, map[string]any, map[string]any) error { return nil }
	e := newEnv(t, mutations.Options{Check: allow, Allow: func(context.Context, any, volt.Mutation) error { return nil }}, todos,
		`INSERT INTO todos (id, title) VALUES ('a', 'old'), ('b', 'old')`)
	bad := ins("todos", row{"id": "x", "title": row{"not": "text"}})
	// Alone in its batch (no savepoint), then beside another transaction
	// of the same request (savepoints).
	wantRejected(t, e.one("c", 1, upd("todos", row{"id": "a"}, row{"title": "new"}), bad), volt.CodeInvalid)
	rs := e.post("c", txn(2, upd("todos", row{"id": "b"}, row{"title": "new"}), bad), txn(3, upd("todos", row{"id": "a"}, row{"done": true})))
	wantRejected(t, rs[0], volt.CodeInvalid)
	wantAccepted(t, rs[1])
	if n := e.count(`SELECT count(*) FROM todos WHERE title = 'new' OR id = 'x'`); n != 0 {
		t.Fatalf("%d rows written by rejected transactions", n)
	}
	if n := e.count(`SELECT count(*) FROM todos WHERE id = 'a' AND done`); n != 1 {
		t.Fatalf("seq 3 not applied")
	}
}
