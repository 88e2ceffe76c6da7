package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestEmbeddedDefault runs volt without DATABASE_URL: it starts its own
// Postgres under the storage dir, serves shapes from it, and reuses it (data
// and shapes) on the next start.
func TestEmbeddedDefault(t *testing.T) {
	v := startVolt(t, "")
	url := regexp.MustCompile(`url="?(postgres://[^"\s]+)`).FindStringSubmatch(v.Log())
	if url == nil || !strings.Contains(v.Log(), "embedded PostgreSQL") {
		t.Fatalf("log does not say it started an embedded Postgres:\n%s", v.Log())
	}
	db := url[1]
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items VALUES (1, 'kept')`)
	f := newFollower(v, "table", "items")
	f.catchUp(t)
	v.Stop()
	v.Restart()
	if !strings.Contains(v.Log(), "shapes restored") {
		t.Errorf("shapes were not restored on the embedded default")
	}
	pgtest.Exec(t, db, `INSERT INTO items VALUES (2, 'after restart')`)
	want := pgRows(t, db, "items", 1, `SELECT id, title FROM items`)
	f.pollUntil(t, "the embedded Postgres to be reused", func(rows map[string]map[string]*string) bool { return diffRows(rows, want) == "" })
}
