package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// QueryOnce runs one query in a read-only REPEATABLE READ transaction in
// a single round trip: BEGIN, the display settings with the snapshot's
// identity (one SELECT of set_config calls), the query and COMMIT are
// sent together through the extended protocol (unnamed statements, one
// Sync). params are the query's parameters, each a text array ($k, to be
// cast by the query: `$k::text[]::int4[]`). info is called with the
// snapshot's identity before any row, then row for each row with every
// column's text output (nil for NULL; the slices are only valid during
// the call). An error from info or row is returned once the rest of the
// batch is read; the transaction is read-only, so nothing is changed.
func (s *Snapshotter) QueryOnce(ctx context.Context, sql string, params [][]*string, info func(SnapshotInfo) error, row func([][]byte) error) (err error) {
	conn, end, err := s.snapshotConn(ctx, "snapshot query")
	if err != nil {
		return err
	}
	defer end(&err)
	pc := conn.Conn().PgConn()
	vals := make([][]byte, len(params))
	oids := make([]uint32, len(params))
	tm := conn.Conn().TypeMap()
	for i, p := range params {
		if p == nil {
			p = []*string{} // an empty array, not NULL
		}
		if vals[i], err = tm.Encode(pgtype.TextArrayOID, pgtype.TextFormatCode, p, nil); err != nil {
			return fmt.Errorf("snapshot query parameter $%d: %w", i+1, err)
		}
		oids[i] = pgtype.TextArrayOID
	}
	text := []int16{pgx.TextFormatCode}
	var b pgconn.Batch
	b.ExecParams("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", nil, nil, nil, nil)
	b.ExecParams(identityWithSettings, nil, nil, nil, text)
	b.ExecParams(sql, vals, oids, nil, text)
	b.ExecParams("COMMIT", nil, nil, nil, nil)
	steps := [...]string{"begin", "snapshot identity", "query", "commit"}
	mrr := pc.ExecBatch(ctx, &b)
	var first error
	n := 0
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		switch n {
		case 1:
			first = readIdentity(rr, info)
		case 2:
			for first == nil && rr.NextRow() {
				first = row(rr.Values())
			}
		}
		if _, err := rr.Close(); err != nil && first == nil {
			first = fmt.Errorf("snapshot query (%s): %w", steps[min(n, len(steps)-1)], err)
		}
		n++
	}
	if err := mrr.Close(); err != nil && first == nil {
		first = fmt.Errorf("snapshot query (%s): %w", steps[min(n, len(steps)-1)], err)
	}
	if first == nil && n != len(steps) {
		first = fmt.Errorf("snapshot query: %d results, want %d", n, len(steps))
	}
	return first
}

// identityWithSettings reads the snapshot's identity (its first two
// columns, as Snapshot's) and applies the display settings for the rest
// of the transaction (set_config(…, true) is SET LOCAL, in one statement
// so that it fits the extended protocol).
var identityWithSettings = func() string {
	cols := []string{"pg_current_snapshot()::text", "(pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text"}
	for _, set := range strings.Split(displaySettings, ";") {
		name, val, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(set), "SET "), " = ")
		cols = append(cols, "set_config('"+name+"', '"+strings.Trim(val, "'")+"', true)")
	}
	return "SELECT " + strings.Join(cols, ", ")
}()
