package postgres

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/voltsync/volt/internal/pgtest"
)

// sqoTurnConn counts the client's request flights on a connection: a
// write after a read (or the first write) starts one, so the count is the
// round trips the client waited for.
type sqoTurnConn struct {
	net.Conn
	mu      sync.Mutex
	reading bool
	turns   *int
}

func (c *sqoTurnConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.reading || *c.turns == 0 {
		*c.turns++
	}
	c.reading = false
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *sqoTurnConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	c.reading = true
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// TestSnapshotQueryOnce runs a parameterised query in a snapshot: the
// rows, the identity before them, the display settings applied, text
// array parameters with NULLs and quotes, in one round trip; and a query
// that fails, or an info callback that refuses the snapshot, leaves the
// pooled connection usable.
func TestSnapshotQueryOnce(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text, at timestamptz, b bytea)`,
		`INSERT INTO items VALUES (1, 'a', '2026-01-02 03:04:05+02', '\x0102'), (2, 'b"\c', NULL, NULL), (3, NULL, NULL, NULL)`)
	cfg, err := pgxpool.ParseConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	var mu sync.Mutex
	turns := 0
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		return &sqoTurnConn{Conn: c, turns: &turns}, nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := &Snapshotter{Pool: pool}
	ctx := context.Background()
	const sql = `SELECT id, title, at, b FROM items WHERE id = ANY ($1::text[]::int4[]) OR title = ANY ($2::text[]) ORDER BY id`
	str := func(s string) *string { return &s }
	run := func(sql string, params [][]*string, info func(SnapshotInfo) error) ([]string, SnapshotInfo, error) {
		var rows []string
		var got SnapshotInfo
		err := s.QueryOnce(ctx, sql, params, func(si SnapshotInfo) error {
			if rows != nil {
				t.Fatal("info after a row")
			}
			got = si
			if info != nil {
				return info(si)
			}
			return nil
		}, textRows(&rows))
		return rows, got, err
	}
	params := [][]*string{{str("1"), nil}, {str(`b"\c`), nil}}
	if _, _, err := run(sql, params, nil); err != nil { // warms the connection
		t.Fatal(err)
	}
	mu.Lock()
	turns = 0
	mu.Unlock()
	rows, info, err := run(sql, params, nil)
	want := []string{"1", "a", "2026-01-02 01:04:05+00", `\x0102`, "2", `b"\c`, "NULL", "NULL"}
	if err != nil || strings.Join(rows, "|") != strings.Join(want, "|") || info.Xmax == 0 || info.LSN == 0 {
		t.Fatalf("query: %q %+v %v", rows, info, err)
	}
	mu.Lock()
	if turns != 1 {
		t.Errorf("%d round trips, want 1", turns)
	}
	mu.Unlock()
	if rows, _, err := run(sql, [][]*string{nil, nil}, nil); err != nil || len(rows) != 0 {
		t.Fatalf("empty arrays: %q %v", rows, err)
	}

	refused := errors.New("refused")
	if rows, _, err := run(sql, params, func(SnapshotInfo) error { return refused }); !errors.Is(err, refused) || len(rows) != 0 {
		t.Fatalf("refused snapshot: %q %v", rows, err)
	}
	var pgErr *pgconn.PgError
	if _, _, err := run(`SELECT id FROM items WHERE id = $1::text[]::int4[]`, params, nil); !errors.As(err, &pgErr) {
		t.Fatalf("bad query: %v, want a Postgres error", err)
	}
	if _, _, err := run(`SELECT 1/0 FROM items WHERE id = ANY ($1::text[]::int4[])`, params, nil); !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("failing query: %v, want division by zero", err)
	}
	if rows, _, err := run(sql, params, nil); err != nil || len(rows) != len(want) {
		t.Fatalf("after the failures: %q %v", rows, err)
	}
}
