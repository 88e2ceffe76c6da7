package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
)

// TestSnapshotRacesARoutedCommit: Postgres sends a commit to replication
// before it is visible (here for as long as a synchronous standby that
// never answers takes). A shape created in that moment must not lose the
// transaction: volt routed it before the shape existed, so only the
// snapshot can hold it, and the snapshot waits until it does. Before, the
// new shape's snapshot missed the update and its clients never saw it.
func TestSnapshotRacesARoutedCommit(t *testing.T) {
	db := snaprStandbyDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE snaprace (id int PRIMARY KEY, active bool NOT NULL)`,
		`INSERT INTO snaprace VALUES (1, true), (2, true)`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s")
	release := snaprHoldCommit(t, v, db, "snaprace")
	// A new shape whose only row comes from that transaction.
	f := newFollower(v, "table", "snaprace", "where", "NOT active")
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		f.poll(t)
	}()
	snaprAwaitSnapshot(v)
	release()
	<-polled
	first := f.handle
	f.pollUntil(t, "row 1 in the new shape", func(rows map[string]map[string]*string) bool {
		return rows[`"public"."snaprace"/"1"`] != nil
	})
	if len(f.rows) != 1 || f.handle != first || len(f.violations) > 0 {
		t.Fatalf("new shape: rows %s, handle %s (first %s), violations %v", dump(f.rows), f.handle, first, f.violations)
	}
}

// snaprStandbyDB returns a database on a cluster of its own whose
// synchronous standby never answers: a transaction that sets
// synchronous_commit = on is sent to replication and then waits, not
// visible to snapshots, until its wait is cancelled.
func snaprStandbyDB(t *testing.T) string {
	t.Helper()
	cluster := pgtest.NewCluster(t)
	db := pgtest.NewDBOn(t, cluster)
	pgtest.Exec(t, cluster.URL("postgres"),
		`ALTER SYSTEM SET synchronous_standby_names = 'snaprace_nobody'`,
		`ALTER SYSTEM SET synchronous_commit = off`,
		`SELECT pg_reload_conf()`)
	return db
}

// snaprHoldCommit commits `UPDATE table SET active = false WHERE id = 1`
// on a database of snaprStandbyDB and returns once volt has routed the
// transaction (seen through a shape on table) while it is still not
// visible to snapshots. release cancels the wait for the standby, which
// makes the transaction visible, and waits for its commit to return.
func snaprHoldCommit(t *testing.T, v *volt, db, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	r := get(t, v.shapeURL("table", table, "offset", "-1"))
	if r.Status != 200 {
		t.Fatalf("%s: %d %s", table, r.Status, r.Body)
	}
	handle, offset := r.Header.Get("electric-handle"), r.Header.Get("electric-offset")
	writer, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close(context.Background()) })
	var pid int
	if err := writer.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() {
		_, err := writer.Exec(ctx, `BEGIN; SET LOCAL synchronous_commit = on; UPDATE `+table+` SET active = false WHERE id = 1; COMMIT`)
		committed <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for routed := false; !routed; {
		r := get(t, v.shapeURL("table", table, "handle", handle, "offset", offset, "live", "true"))
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", table, r.Status, r.Body)
		}
		offset = r.Header.Get("electric-offset")
		for _, m := range r.Msgs {
			routed = routed || m.op() == "update" && m.Value["active"] != nil && *m.Value["active"] == "false"
		}
		if !routed && time.Now().After(deadline) {
			t.Fatal("volt never routed the transaction")
		}
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var visible bool
	if err := conn.QueryRow(ctx, `SELECT NOT active FROM `+table+` WHERE id = 1`).Scan(&visible); err != nil || visible {
		t.Fatalf("the transaction is visible already (%v, %v): the test needs it waiting for the standby", visible, err)
	}
	return func() {
		t.Helper()
		if _, err := conn.Exec(ctx, `SELECT pg_cancel_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		if err := <-committed; err != nil {
			t.Logf("commit: %v", err) // a cancelled wait for the standby still commits
		}
	}
}

// snaprAwaitSnapshot gives a shape being created 2 s to complete its
// snapshot. Without the wait for routed transactions the snapshot
// completes at once, missing the held one; with it, it cannot complete
// until the transaction is released, so the caller releases it either
// way after this.
func snaprAwaitSnapshot(v *volt) {
	done := strings.Count(v.Log(), `msg="snapshot complete"`)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if strings.Count(v.Log(), `msg="snapshot complete"`) > done {
			return
		}
	}
}

// TestSnapshotAfterEarlierWriters: logical decoding drops the changes a
// transaction made to a table before the table joined volt's publication,
// even when it commits after. Publishing the table for a new shape
// therefore waits for such transactions to end, so that the shape's
// snapshot holds their first changes. The table has REPLICA IDENTITY FULL
// already, so volt's ALTER PUBLICATION does not wait for the writer by its
// lock. Before, the snapshot was taken while the writer ran, and row 1's
// update reached neither the snapshot nor the stream.
func TestSnapshotAfterEarlierWriters(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE snapstr (id int PRIMARY KEY, v int NOT NULL)`,
		`ALTER TABLE snapstr REPLICA IDENTITY FULL`,
		`INSERT INTO snapstr VALUES (1, 1), (2, 1)`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s")
	ctx := context.Background()
	writer, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(ctx)
	if _, err := writer.Exec(ctx, `BEGIN; UPDATE snapstr SET v = 2 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	f := newFollower(v, "table", "snapstr")
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		f.poll(t)
	}()
	observer, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var published bool
		if err := observer.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE tablename = 'snapstr')`).Scan(&published); err != nil {
			t.Fatal(err)
		}
		if published {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("volt did not publish snapstr")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := writer.Exec(ctx, `UPDATE snapstr SET v = 3 WHERE id = 2; COMMIT`); err != nil {
		t.Fatal(err)
	}
	<-polled
	f.pollUntil(t, "row 2 updated", func(rows map[string]map[string]*string) bool {
		r := rows[`"public"."snapstr"/"2"`]
		return r != nil && r["v"] != nil && *r["v"] == "3"
	})
	if r := f.rows[`"public"."snapstr"/"1"`]; r == nil || r["v"] == nil || *r["v"] != "2" {
		t.Fatalf("row 1 is %s, want v 2 (the writer's update before the table was published)", dump(f.rows))
	}
}
