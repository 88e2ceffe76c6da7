package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

// SnapshotInfo identifies the MVCC snapshot a shape's initial rows were
// read in (its Visible tells which transactions the rows include).
type SnapshotInfo struct {
	volt.Snapshot
	// LSN is pg_current_wal_insert_lsn() inside the snapshot: every
	// transaction visible in the snapshot committed before it.
	LSN uint64
}

// SnapshotQuery is what to read for one shape.
type SnapshotQuery struct {
	Table   string   // quoted, qualified name
	Columns []string // quoted column names
	Where   string   // SQL boolean expression, or "" for all rows
	// InfoOnly skips the row query (log=changes_only).
	InfoOnly bool
	// OrderBy, Limit and Offset shape subset snapshots ("" / 0 for none).
	OrderBy string
	Limit   int
	Offset  int
}

// Snapshotter reads shapes' initial rows in REPEATABLE READ transactions.
type Snapshotter struct {
	Pool *pgxpool.Pool
}

// snapshotConn acquires a connection for a snapshot transaction (what
// names it in errors); end(&err) rolls back a transaction an error left
// open, so that the connection is not reused inside it, and releases it.
func (s *Snapshotter) snapshotConn(ctx context.Context, what string) (conn *pgxpool.Conn, end func(*error), err error) {
	if conn, err = s.Pool.Acquire(ctx); err != nil {
		return nil, nil, fmt.Errorf("begin %s: %w", what, err)
	}
	end = func(err *error) {
		defer conn.Release()
		pc := conn.Conn().PgConn()
		if pc.TxStatus() != 'I' && !pc.IsClosed() {
			if _, rerr := pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll(); rerr != nil && *err == nil {
				*err = fmt.Errorf("end %s: %w", what, rerr)
			}
		}
	}
	return conn, end, nil
}

// Snapshot reads q in one read-only REPEATABLE READ transaction. It calls
// info once with the snapshot's identity before any row, then row for each
// row with every column's text output (nil for NULL). The slices passed to
// row are only valid during the call.
//
// Three round trips: BEGIN, the display settings and the snapshot's
// identity as one simple-protocol query string (fixed text); the row query
// alone, through the extended protocol (one unnamed statement: no
// prepare round trip, and no way for a clause to end the statement and
// start another); COMMIT. Before, it took one round trip per statement
// plus a prepare per query, which is much of a small shape's snapshot.
func (s *Snapshotter) Snapshot(ctx context.Context, q SnapshotQuery, info func(SnapshotInfo) error, row func([][]byte) error) (err error) {
	conn, end, err := s.snapshotConn(ctx, "snapshot")
	if err != nil {
		return err
	}
	defer end(&err)
	pc := conn.Conn().PgConn()
	begin := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " + localDisplaySettings() +
		"; SELECT pg_current_snapshot()::text, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text"
	mrr := pc.Exec(ctx, begin)
	haveInfo, ierr := false, error(nil)
	for ierr == nil && mrr.NextResult() {
		rr := mrr.ResultReader()
		if len(rr.FieldDescriptions()) > 0 && !haveInfo {
			haveInfo = true
			ierr = readIdentity(rr, info)
		}
		if _, err := rr.Close(); err != nil && ierr == nil {
			ierr = fmt.Errorf("begin snapshot: %w", err)
		}
	}
	if err := mrr.Close(); err != nil && ierr == nil {
		ierr = fmt.Errorf("begin snapshot: %w", err)
	}
	if ierr == nil && !haveInfo {
		ierr = errors.New("begin snapshot: no snapshot identity")
	}
	if ierr != nil {
		return ierr
	}
	if !q.InfoOnly {
		rr := pc.ExecParams(ctx, q.sql(), nil, nil, nil, []int16{pgx.TextFormatCode})
		var rowErr error
		for rowErr == nil && rr.NextRow() {
			rowErr = row(rr.Values())
		}
		if _, err := rr.Close(); err != nil && rowErr == nil {
			rowErr = fmt.Errorf("snapshot query: %w", err)
		}
		if rowErr != nil {
			return rowErr
		}
	}
	if _, err := pc.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		return fmt.Errorf("end snapshot: %w", err)
	}
	return nil
}

// readIdentity reads the snapshot identity row (its first two columns;
// QueryOnce's row carries the settings' results after them) and passes
// it to info.
func readIdentity(rr *pgconn.ResultReader, info func(SnapshotInfo) error) error {
	if !rr.NextRow() {
		return errors.New("read snapshot identity: no row")
	}
	vals := rr.Values()
	if len(vals) < 2 {
		return fmt.Errorf("read snapshot identity: %d columns", len(vals))
	}
	si, err := parseSnapshot(string(vals[0]))
	if err != nil {
		return err
	}
	if si.LSN, err = strconv.ParseUint(string(vals[1]), 10, 64); err != nil {
		return fmt.Errorf("snapshot LSN %q: %w", vals[1], err)
	}
	return info(si)
}

// sql is the row query.
func (q SnapshotQuery) sql() string {
	sql := "SELECT " + strings.Join(q.Columns, ", ") + " FROM " + q.Table
	if q.Where != "" {
		sql += " WHERE " + q.Where
	}
	if q.OrderBy != "" {
		sql += " ORDER BY " + q.OrderBy
	}
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	if q.Offset > 0 {
		sql += " OFFSET " + strconv.Itoa(q.Offset)
	}
	return sql
}

// parseSnapshot parses pg_current_snapshot()'s text form xmin:xmax:xip,….
func parseSnapshot(s string) (SnapshotInfo, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return SnapshotInfo{}, fmt.Errorf("unexpected pg_current_snapshot() %q", s)
	}
	var si SnapshotInfo
	var err error
	if si.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return si, fmt.Errorf("snapshot xmin %q: %w", s, err)
	}
	if si.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return si, fmt.Errorf("snapshot xmax %q: %w", s, err)
	}
	if parts[2] != "" {
		for _, p := range strings.Split(parts[2], ",") {
			x, err := strconv.ParseUint(p, 10, 64)
			if err != nil {
				return si, fmt.Errorf("snapshot xip %q: %w", s, err)
			}
			si.Xip = append(si.Xip, x)
		}
	}
	return si, nil
}
