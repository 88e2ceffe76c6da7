package e2e

import (
	"fmt"
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

func TestInitialSyncThenLiveChanges(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL, done boolean, n numeric)`,
		`INSERT INTO items SELECT g, 'item ' || g, g % 2 = 0, g * 1.5 FROM generate_series(1, 5) g`)
	v := startVolt(t, db)

	r := get(t, v.shapeURL("table", "items", "offset", "-1"))
	if r.Status != 200 {
		t.Fatalf("initial request: %d %s", r.Status, r.Body)
	}
	if got := r.Header.Get("electric-offset"); got != "0_0" {
		t.Errorf("electric-offset = %q, want 0_0", got)
	}
	if r.Header.Get("electric-schema") == "" || r.Header.Get("electric-handle") == "" {
		t.Errorf("missing schema or handle header: %v", r.Header)
	}
	last := r.Msgs[len(r.Msgs)-1]
	if last.control() != "snapshot-end" || len(r.Msgs) != 6 {
		t.Fatalf("want 5 rows and snapshot-end, got %s", r.Body)
	}
	if v := r.Msgs[0].Value["done"]; v == nil || (*v != "false" && *v != "true") {
		t.Errorf("bool encoded as %v", v)
	}

	f := newFollower(v, "table", "items")
	f.catchUp(t)
	if len(f.rows) != 5 {
		t.Fatalf("rows after catch-up: %d", len(f.rows))
	}
	pgtest.Exec(t, db, `INSERT INTO items VALUES (6, 'six', true, 9)`, `UPDATE items SET title = 'one!' WHERE id = 1`, `DELETE FROM items WHERE id = 2`)
	f.pollUntil(t, "live changes", func(rows map[string]map[string]*string) bool {
		one := rows[`"public"."items"/"1"`]
		_, two := rows[`"public"."items"/"2"`]
		return len(rows) == 5 && one != nil && *one["title"] == "one!" && !two
	})
	want := fmt.Sprint(5)
	if fmt.Sprint(len(f.rows)) != want {
		t.Fatalf("rows: %v", dump(f.rows))
	}
}
