package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/voltsync/volt/client"
)

// ctypedChild is a row of child, decoded by the client's typed API.
type ctypedChild struct {
	ID       int32  `db:"id"`
	ParentID *int64 `db:"parent_id"`
	Value    int    // untagged: column "value"
}

// TestClientTypedSubqueryMoves follows a subquery shape through
// client.ShapeOf: a parent entering the subquery's result brings its child
// in (move-in), one leaving it takes its child out (move-out, which the
// server sends no delete for), and the typed rows follow both.
func TestClientTypedSubqueryMoves(t *testing.T) {
	db := sqParentChild(t) // parents (1, value 1), (2, value 2); children 1 → parent 1, 2 → parent 2
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s")
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	c, err := client.New(v.URL)
	if err != nil {
		t.Fatal(err)
	}
	children, err := client.ShapeOf[ctypedChild](c, client.ShapeDef{Table: "child", Where: sqWhere})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var moves []client.MoveKind
	notify := make(chan struct{}, 1)
	children.Subscribe(func(sc client.ShapeChange) {
		mu.Lock()
		for _, m := range sc.Moves {
			moves = append(moves, m.Kind)
		}
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- children.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// ctypedWait waits until the typed rows are want (ids, in key order)
	// and the shape is up to date.
	ctypedWait := func(what string, want ...int32) {
		t.Helper()
		for {
			var ids []int32
			for _, ch := range children.All() {
				ids = append(ids, ch.ID)
			}
			if slices.Equal(ids, want) && children.UpToDate() {
				return
			}
			select {
			case <-notify:
			case err := <-done:
				t.Fatalf("%s: Run returned %v", what, err)
			case <-ctx.Done():
				t.Fatalf("%s: typed rows %v, want %v", what, ids, want)
			}
		}
	}
	ctypedWait("snapshot", 1)
	if ch, ok := children.Get(`"public"."child"/"1"`); !ok || ch.ParentID == nil || *ch.ParentID != 1 || ch.Value != 10 {
		t.Fatalf("child 1: %+v", ch)
	}

	if _, err := conn.Exec(ctx, `UPDATE parent SET value = 1 WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	ctypedWait("after parent 2 moved in", 1, 2)
	if _, err := conn.Exec(ctx, `UPDATE parent SET value = 2 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	ctypedWait("after parent 1 moved out", 2)
	if _, err := conn.Exec(ctx, `UPDATE child SET value = 21 WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	for {
		if ch, _ := children.Get(`"public"."child"/"2"`); ch.Value == 21 {
			break
		}
		select {
		case <-notify:
		case <-ctx.Done():
			t.Fatal("child 2's update did not arrive in the typed row")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(moves, client.MoveIn) || !slices.Contains(moves, client.MoveOut) {
		t.Fatalf("moves %q, want a move-in and a move-out", moves)
	}
	// The map form holds the same rows.
	if keys := children.Keys(); !slices.Equal(keys, []string{`"public"."child"/"2"`}) {
		t.Fatalf("map rows %v", keys)
	}
}
