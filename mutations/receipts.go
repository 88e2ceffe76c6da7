package mutations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
)

// lockClient returns the client's last seq, holding its volt.clients row
// lock until tx ends: requests for one client are serialised per
// transaction.
func lockClient(ctx context.Context, tx pgx.Tx, clientID string) (int64, error) {
	const sel = `SELECT last_seq FROM volt.clients WHERE client_id = $1 FOR UPDATE`
	var last int64
	err := tx.QueryRow(ctx, sel, clientID).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err = tx.Exec(ctx, `INSERT INTO volt.clients (client_id, last_seq) VALUES ($1, 0) ON CONFLICT DO NOTHING`, clientID); err != nil {
			return 0, fmt.Errorf("lock client: %w", err)
		}
		err = tx.QueryRow(ctx, sel, clientID).Scan(&last)
	}
	if err != nil {
		return 0, fmt.Errorf("lock client: %w", err)
	}
	return last, nil
}

const rejectSQL = `
WITH r AS (
  INSERT INTO volt.receipts (client_id, seq, status, code, message, detail)
  VALUES ($1, $2, 'rejected', $3, $4, $5::text::jsonb)
), c AS (
  UPDATE volt.clients SET last_seq = $2 WHERE client_id = $1
)
SELECT 1`

// txQuerier is a connection or a transaction: rejections and replays are
// read and recorded in a transaction of their own, or in a savepoint of a
// batch.
type txQuerier interface {
	querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// receiptDetail holds what a rejection returns beyond code and message.
type receiptDetail struct {
	Constraint string          `json:"constraint,omitempty"`
	Row        json.RawMessage `json:"row,omitempty"`
}

// storeRejection records r for seq in a transaction of its own. When seq
// was decided meanwhile (a concurrent request), the stored result wins.
func (h *Handler) storeRejection(ctx context.Context, conn txQuerier, clientID string, seq int64, r volt.MutationResult) volt.MutationResult {
	var out volt.MutationResult
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		last, err := lockClient(ctx, tx, clientID)
		if err != nil {
			return err
		}
		if seq <= last {
			out, err = storedResult(ctx, tx, clientID, seq, last)
			return err
		}
		if seq != last+1 {
			out = outOfOrder(seq, last)
			return nil
		}
		var detail any
		if r.Constraint != "" || r.Row != nil {
			b, _ := json.Marshal(receiptDetail{Constraint: r.Constraint, Row: r.Row})
			detail = string(b)
		}
		var one int
		out = r
		return tx.QueryRow(ctx, rejectSQL, clientID, seq, r.Code, r.Message, detail).Scan(&one)
	})
	if err != nil {
		return retryResult(err)
	}
	return out
}

// storedResult returns the receipt of seq (seq <= last).
func storedResult(ctx context.Context, tx pgx.Tx, clientID string, seq, last int64) (volt.MutationResult, error) {
	const q = `SELECT status, coalesce(code, ''), coalesce(message, ''), coalesce(txid, 0), coalesce(xid8, ''), coalesce(lsn, ''), detail::text
		FROM volt.receipts WHERE client_id = $1 AND seq = $2`
	r := volt.MutationResult{Seq: seq, Replayed: true}
	var txid int64
	var detail *string
	err := tx.QueryRow(ctx, q, clientID, seq).Scan(&r.Status, &r.Code, &r.Message, &txid, &r.Xid8, &r.LSN, &detail)
	if errors.Is(err, pgx.ErrNoRows) {
		// Receipts were pruned: the seq is behind the server.
		r := outOfOrder(seq, last)
		r.Message = fmt.Sprintf("seq %d was processed and its receipt removed; the server expects seq %d", seq, last+1)
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read receipt: %w", err)
	}
	r.Txid = uint64(txid)
	if detail != nil {
		var d receiptDetail
		if err := json.Unmarshal([]byte(*detail), &d); err == nil {
			r.Constraint, r.Row = d.Constraint, d.Row
		}
	}
	return r, nil
}

// LSNResolver finds the commit LSN reported with an accepted transaction,
// for requests that ask for it ("wait": "lsn"), called after the
// request's transactions are committed. It holds no
// database connection: the handler has released them. 0 (or an error)
// means it cannot tell; the result then carries an upper bound.
type LSNResolver interface {
	CommitLSN(ctx context.Context, xid8 string) (uint64, error)
}

// UpperBoundLSN resolves nothing: every accepted result keeps the upper
// bound it carries, pg_current_wal_insert_lsn() read right after its
// COMMIT, at or after the end of its commit record, so a reader that has
// processed the WAL up to it has seen the transaction. With concurrent
// writers it can be later than the commit itself; it is never earlier.
type UpperBoundLSN struct{}

// CommitLSN implements LSNResolver: it always returns 0.
func (UpperBoundLSN) CommitLSN(context.Context, string) (uint64, error) { return 0, nil }
