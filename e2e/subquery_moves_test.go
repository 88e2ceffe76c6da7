package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
)

// Subquery shapes as TanStack DB's Electric collection follows them
// (compat/tanstack-moves.test.mjs runs the collection itself): these
// tests follow a shape over HTTP, applying its messages as
// subqueries.md §9 says, and check the rows against Postgres and that
// volt never gives up on the shape (409) where it has no reason to.

// sqmFollower follows a subquery shape: rows with their tags and
// active_conditions, move-out / move-in events applied to them.
type sqmFollower struct {
	v        *volt
	params   []string
	handle   string
	offset   string
	cursor   string
	upToDate bool
	rows     map[string]*sqmRow
	// refetches counts 409s; events counts move events by kind.
	refetches int
	events    map[string]int
}

type sqmRow struct {
	value map[string]*string
	tags  []string
	conds []bool
}

func sqmFollow(v *volt, params ...string) *sqmFollower {
	return &sqmFollower{v: v, params: params, offset: "-1", rows: map[string]*sqmRow{}, events: map[string]int{}}
}

// poll makes one request (live once up to date) and applies its answer.
func (f *sqmFollower) poll(t *testing.T) {
	t.Helper()
	kv := append(slices.Clone(f.params), "offset", f.offset)
	if f.handle != "" {
		kv = append(kv, "handle", f.handle)
	}
	if f.upToDate {
		kv = append(kv, "live", "true", "cursor", f.cursor)
	}
	r := get(t, f.v.shapeURL(kv...))
	switch r.Status {
	case 200:
	case 409:
		f.refetches++
		f.handle, f.offset, f.upToDate = r.Header.Get("electric-handle"), "-1", false
		f.rows = map[string]*sqmRow{}
		return
	default:
		t.Fatalf("GET %v: %d %s", kv, r.Status, r.Body)
	}
	f.handle = r.Header.Get("electric-handle")
	f.offset = r.Header.Get("electric-offset")
	f.cursor = r.Header.Get("electric-cursor")
	for _, m := range r.Msgs {
		f.apply(t, m)
	}
}

func (f *sqmFollower) apply(t *testing.T, m message) {
	t.Helper()
	if m.control() == "up-to-date" {
		f.upToDate = true
	}
	switch m.op() {
	case "insert", "update":
		row := f.rows[m.Key]
		if row == nil {
			row = &sqmRow{value: map[string]*string{}}
			f.rows[m.Key] = row
		}
		maps.Copy(row.value, m.Value)
		removed := sqStrings(t, m, "tags")
		if _, ok := m.Headers["removed_tags"]; ok {
			removed := sqStrings(t, m, "removed_tags")
			row.tags = slices.DeleteFunc(row.tags, func(s string) bool { return slices.Contains(removed, s) })
		}
		for _, tag := range removed {
			if !slices.Contains(row.tags, tag) {
				row.tags = append(row.tags, tag)
			}
		}
		row.conds = sqConds(t, m)
		return
	case "delete":
		delete(f.rows, m.Key)
		return
	}
	event, _ := m.Headers["event"].(string)
	if event != "move-in" && event != "move-out" {
		return
	}
	f.events[event]++
	patterns, _ := m.Headers["patterns"].([]any)
	for key, row := range f.rows {
		for _, p := range patterns {
			pm, _ := p.(map[string]any)
			pos, _ := pm["pos"].(float64)
			value, _ := pm["value"].(string)
			for _, tag := range row.tags {
				if slots := strings.Split(tag, "/"); int(pos) < len(slots) && slots[int(pos)] == value {
					row.conds[int(pos)] = event == "move-in"
				}
			}
		}
		if !sqmHolds(row) {
			delete(f.rows, key)
		}
	}
}

// sqmHolds: some disjunct (tag) has every one of its positions active.
func sqmHolds(row *sqmRow) bool {
	for _, tag := range row.tags {
		all := true
		for pos, slot := range strings.Split(tag, "/") {
			if slot != "" && (pos >= len(row.conds) || !row.conds[pos]) {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

// ids returns the followed rows' ids, sorted.
func (f *sqmFollower) ids() []string {
	var out []string
	for _, row := range f.rows {
		if id := row.value["id"]; id != nil {
			out = append(out, *id)
		}
	}
	slices.Sort(out)
	return out
}

// sqmIDs returns the ids of table's rows that match clause, sorted as text.
func sqmIDs(t *testing.T, conn *pgx.Conn, table, clause string) []string {
	t.Helper()
	rs, err := conn.Query(context.Background(), `SELECT id::text FROM `+table+` WHERE `+clause+` ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// awaitEqual polls until the followed rows equal Postgres' answer to clause.
func (f *sqmFollower) awaitEqual(t *testing.T, conn *pgx.Conn, table, clause, what string) {
	t.Helper()
	want := sqmIDs(t, conn, table, clause)
	deadline := time.Now().Add(20 * time.Second)
	for {
		f.poll(t)
		if f.upToDate && slices.Equal(f.ids(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: rows %v, Postgres has %v", what, f.ids(), want)
		}
	}
}

// TestSubqueryMovesTwoSubqueriesNoRefetch: a shape whose clause ORs two
// different subqueries (TanStack's "a row in for one of two reasons")
// follows move-ins through either one with move-in events, never a 409.
// The move-in query once passed the other dependency's view as a
// parameter it did not use, which Postgres refuses ("could not determine
// data type of parameter $4"), so every such move-in removed the shape.
func TestSubqueryMovesTwoSubqueriesNoRefetch(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE users (id int PRIMARY KEY, active bool NOT NULL)`,
		`CREATE TABLE teams (id int8 PRIMARY KEY, open bool NOT NULL)`,
		`CREATE TABLE posts (id int PRIMARY KEY, user_id int, team_id int8)`,
		`INSERT INTO users VALUES (1, true), (2, false), (3, false)`,
		`INSERT INTO teams VALUES (10, true), (20, false)`,
		`INSERT INTO posts VALUES (1, 1, 20), (2, 2, 20), (3, 3, 10), (4, 3, 20), (5, 2, NULL)`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s")
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	clause := `user_id IN (SELECT id FROM users WHERE active) OR team_id IN (SELECT id FROM teams WHERE open)`
	f := sqmFollow(v, "table", "posts", "where", clause)
	f.awaitEqual(t, conn, "posts", clause, "snapshot")
	for i, stmt := range []string{
		`UPDATE users SET active = true WHERE id = 2`,  // move-in through the first subquery
		`UPDATE teams SET open = true WHERE id = 20`,   // through the second
		`UPDATE users SET active = false WHERE id = 1`, // a move-out that leaves post 1 in (team 20)
		`UPDATE teams SET open = false WHERE id = 20`,  // … and now out
		`UPDATE users SET active = true WHERE id IN (1, 3)`,
	} {
		if _, err := conn.Exec(context.Background(), stmt); err != nil {
			t.Fatal(err)
		}
		f.awaitEqual(t, conn, "posts", clause, fmt.Sprintf("step %d: %s", i, stmt))
		if f.refetches > 0 {
			t.Fatalf("step %d (%s): volt removed the shape (409) instead of moving rows", i, stmt)
		}
	}
	if f.events["move-in"] < 3 || f.events["move-out"] < 2 {
		t.Errorf("move events %v, want at least 3 move-ins and 2 move-outs", f.events)
	}
}

// TestSubqueryMoveInSeesItsTransaction: Postgres sends a transaction's
// commit to logical replication before the transaction is visible to new
// snapshots (the window is tiny, but under load it opens; synchronous
// replication holds it open: the commit waits for a standby while its
// record is already decoded). A move-in query run in that window read
// the rows as they were before the transaction, and the transaction's
// own change to a moving-in row, dropped as outside the shape under the
// views before, was lost: the client kept the old title. The move-in
// must wait until its transaction is visible.
func TestSubqueryMoveInSeesItsTransaction(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	db := pgtest.NewDBOn(t, cluster)
	// Commits that ask for it (synchronous_commit = on) wait for a standby
	// that never comes; everything else commits as usual.
	pgtest.Exec(t, cluster.URL("postgres"),
		`ALTER SYSTEM SET synchronous_standby_names = 'sqm_nobody'`,
		`ALTER SYSTEM SET synchronous_commit = off`,
		`SELECT pg_reload_conf()`)
	pgtest.Exec(t, db,
		`CREATE TABLE users (id int PRIMARY KEY, active bool NOT NULL)`,
		`CREATE TABLE posts (id int PRIMARY KEY, user_id int, title text)`,
		`INSERT INTO users VALUES (1, true), (2, false)`,
		`INSERT INTO posts VALUES (1, 1, 'a'), (2, 2, 'old'), (3, 2, 'old')`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	clause := `user_id IN (SELECT id FROM users WHERE active)`
	f := sqmFollow(v, "table", "posts", "where", clause)
	f.awaitEqual(t, conn, "posts", clause, "snapshot")

	// The transaction: user 2 moves in, and one of its posts changes.
	writer, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(ctx)
	var pid int
	if err := writer.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() {
		_, err := writer.Exec(ctx, `BEGIN; SET LOCAL synchronous_commit = on;
			UPDATE users SET active = true WHERE id = 2;
			UPDATE posts SET title = 'new' WHERE id = 2;
			COMMIT`)
		committed <- err
	}()
	// Its commit record is written and sent to volt while it waits for
	// the standby, invisible to snapshots.
	var flushed string
	if err := sqmPoll(ctx, func() (bool, error) {
		var waiting bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep')`, pid).Scan(&waiting)
		return waiting, err
	}); err != nil {
		t.Fatalf("the transaction never waited for the standby: %v", err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	if err := sqmPoll(ctx, func() (bool, error) {
		var sent bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_replication WHERE sent_lsn >= $1::pg_lsn)`, flushed).Scan(&sent)
		return sent, err
	}); err != nil {
		t.Fatalf("volt was never sent the commit: %v", err)
	}
	// volt now has the commit; give a move-in that does not wait its
	// chance to run (one live poll, at most the long-poll timeout).
	f.poll(t)
	if _, err := conn.Exec(ctx, `SELECT pg_cancel_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := <-committed; err != nil {
		// A cancelled wait for the standby still commits (with a warning).
		t.Logf("commit: %v", err)
	}
	var title string
	if err := conn.QueryRow(ctx, `SELECT title FROM posts WHERE id = 2`).Scan(&title); err != nil || title != "new" {
		t.Fatalf("the transaction did not commit: title %q, %v", title, err)
	}
	f.awaitEqual(t, conn, "posts", clause, "after the move-in")
	if got := f.rows[`"public"."posts"/"2"`]; got == nil || got.value["title"] == nil || *got.value["title"] != "new" {
		t.Fatalf("post 2 after the move-in: %+v, want title new (the transaction's own change)", got)
	}
	if f.refetches > 0 {
		t.Fatalf("volt removed the shape (409) instead of moving rows in")
	}
}

// sqmPoll calls cond every 10 ms until it holds, fails, or 20 s pass.
func sqmPoll(ctx context.Context, cond func() (bool, error)) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
