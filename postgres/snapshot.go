package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
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

// Snapshot reads q in one read-only REPEATABLE READ transaction. It calls
// info once with the snapshot's identity before any row, then row for each
// row with every column's text output (nil for NULL). The slices passed to
// row are only valid during the call.
func (s *Snapshotter) Snapshot(ctx context.Context, q SnapshotQuery, info func(SnapshotInfo) error, row func([][]byte) error) error {
	tx, err := s.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, localDisplaySettings()); err != nil {
		return fmt.Errorf("snapshot settings: %w", err)
	}
	var snap string
	var lsn uint64
	if err := tx.QueryRow(ctx, "SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn() - '0/0'::pg_lsn").Scan(&snap, &lsn); err != nil {
		return fmt.Errorf("read snapshot identity: %w", err)
	}
	si, err := parseSnapshot(snap)
	if err != nil {
		return err
	}
	si.LSN = lsn
	if err := info(si); err != nil {
		return err
	}
	if q.InfoOnly {
		return tx.Commit(ctx)
	}
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
	rows, err := tx.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("snapshot query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.RawValues()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("snapshot rows: %w", err)
	}
	return tx.Commit(ctx)
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
