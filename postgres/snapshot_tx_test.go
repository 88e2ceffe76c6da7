package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestSnapshotTransaction reads rows with their identity, and checks that a
// snapshot that fails (a row callback's error, a query Postgres refuses,
// a clause that tries to end the statement) leaves its pooled connection
// out of any transaction: the next snapshot on the one connection works.
func TestSnapshotTransaction(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, flag bool, title text)`,
		`INSERT INTO items VALUES (1, true, 'a'), (2, NULL, 'b"\c'), (3, false, NULL)`)
	cfg, err := pgxpool.ParseConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := &Snapshotter{Pool: pool}
	ctx := context.Background()
	q := SnapshotQuery{Table: `"public"."items"`, Columns: []string{"id", "flag", "title"}, OrderBy: "id"}
	read := func(q SnapshotQuery) ([]string, SnapshotInfo, error) {
		var rows []string
		var info SnapshotInfo
		err := s.Snapshot(ctx, q, func(si SnapshotInfo) error {
			if rows != nil {
				t.Fatal("info after a row")
			}
			info = si
			return nil
		}, textRows(&rows))
		return rows, info, err
	}
	rows, info, err := read(q)
	want := []string{"1", "t", "a", "2", "NULL", `b"\c`, "3", "f", "NULL"}
	if err != nil || len(rows) != len(want) || info.Xmax == 0 || info.LSN == 0 {
		t.Fatalf("snapshot: %q %+v %v", rows, info, err)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Fatalf("snapshot rows %q, want %q", rows, want)
		}
	}
	stop := errors.New("stop")
	if err := s.Snapshot(ctx, q, func(SnapshotInfo) error { return nil }, func([][]byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("row error: %v", err)
	}
	if err := s.Snapshot(ctx, q, func(SnapshotInfo) error { return stop }, func([][]byte) error { return nil }); !errors.Is(err, stop) {
		t.Fatalf("info error: %v", err)
	}
	var pe *pgconn.PgError
	bad := q
	bad.Where = "id / 0 = 1"
	if _, _, err := read(bad); !errors.As(err, &pe) || pe.Code != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	bad.Where = "true; COMMIT; CREATE TABLE injected (x int)"
	if _, _, err := read(bad); !errors.As(err, &pe) || pe.Code != "42601" {
		t.Fatalf("a clause with statements after it: %v, want a syntax error (one statement only)", err)
	}
	if rows, _, err := read(q); err != nil || len(rows) != len(want) {
		t.Fatalf("snapshot after the failures: %q %v", rows, err)
	}
	info0 := SnapshotInfo{}
	if err := s.Snapshot(ctx, SnapshotQuery{InfoOnly: true}, func(si SnapshotInfo) error { info0 = si; return nil }, nil); err != nil || info0.Xmax == 0 {
		t.Fatalf("info only: %+v %v", info0, err)
	}
}

// textRows is a row callback that appends each column's text to rows
// ("NULL" for NULL).
func textRows(rows *[]string) func([][]byte) error {
	return func(raw [][]byte) error {
		for _, v := range raw {
			if v == nil {
				*rows = append(*rows, "NULL")
			} else {
				*rows = append(*rows, string(v))
			}
		}
		return nil
	}
}
