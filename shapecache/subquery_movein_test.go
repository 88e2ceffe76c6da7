package shapecache

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/shape"
)

// TestSubqueryMoveInsOfShapesRunConcurrently holds one shape's move-in
// query (a test hook before the query) and checks that another shape on
// the same table still gets its move-in, and that the held shape's later
// transaction waits for its splice: it reaches the log after the move-in
// event, and both rows arrive once the hook lets go. Before, a table's
// move-ins ran one after another on its worker, so the second shape's
// move-in waited for the first.
func TestSubqueryMoveInsOfShapesRunConcurrently(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, itemsDDL,
		`CREATE TABLE members (user_id int, project_id int, PRIMARY KEY (user_id, project_id))`,
		`INSERT INTO items VALUES (1, 10, 'a'), (2, 20, 'b')`)
	var mu sync.Mutex
	held := ""
	started := make(chan struct{})
	release := make(chan struct{})
	h := startHarness(t, url, t.TempDir(), func(c *Cache) {
		c.Subqueries = true
		c.sqMoveInHook = func(e *Entry) {
			mu.Lock()
			hold := e.Handle == held
			mu.Unlock()
			if hold {
				close(started)
				<-release
			}
		}
	})
	var once sync.Once
	letGo := func() { once.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before the harness stops (cleanups run last first)
	ctx := context.Background()
	if err := h.cache.Publisher.AddTable(ctx, "public", "members"); err != nil {
		t.Fatal(err)
	}
	table, err := h.insp.Table(ctx, "public", "items")
	if err != nil {
		t.Fatal(err)
	}
	newShape := func(user string) *Entry {
		t.Helper()
		s, err := h.cache.NewShape(ctx, shape.Definition{Schema: "public", Table: "items",
			Where: `owner_id IN (SELECT project_id FROM members WHERE user_id = $1)`, Params: map[string]string{"1": user}}, table)
		if err != nil {
			t.Fatal(err)
		}
		e, err := h.cache.GetOrCreate(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		<-e.Ready()
		if err := e.Err(); err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := newShape("1"), newShape("2")
	mu.Lock()
	held = a.Handle
	mu.Unlock()

	h.exec(`INSERT INTO members VALUES (1, 10)`)
	<-started // a's move-in is held
	h.exec(`INSERT INTO items VALUES (3, 10, 'c')`)
	h.exec(`INSERT INTO members VALUES (2, 20)`)
	waitFor(t, b, "the second shape's move-in while the first one's is held", func() bool {
		_, ok := rows(t, b)[`"public"."items"/"2"`]
		return ok
	})
	if got := rows(t, a); len(got) != 0 {
		t.Fatalf("held shape's log before its splice: %v", got)
	}
	letGo()
	waitFor(t, a, "the held shape's move-in and its later transaction", func() bool {
		got := rows(t, a)
		return len(got) == 2 && got[`"public"."items"/"3"`] != nil
	})
	// The later transaction (item 3) is written after the move-in event.
	var events []string
	o := volt.BeforeAll
	for {
		res, err := a.Read(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range res.Entries {
			var m struct {
				Key     string `json:"key"`
				Headers struct {
					Event     string `json:"event"`
					Operation string `json:"operation"`
					MoveIn    bool   `json:"is_move_in"`
				} `json:"headers"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			switch {
			case m.Headers.Event != "":
				events = append(events, m.Headers.Event)
			case m.Key == `"public"."items"/"3"` && !m.Headers.MoveIn:
				events = append(events, "item 3 "+m.Headers.Operation)
			}
		}
		o = res.End
		if res.AtHead {
			break
		}
	}
	if len(events) == 0 || events[0] != "move-in" {
		t.Fatalf("held shape's log: %q, want the move-in event first", events)
	}
}
