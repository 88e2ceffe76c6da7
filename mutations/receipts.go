package mutations

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
)

// resolveSQL reads, for each ($1[i], $2[i]), the client's last_seq and,
// when the seq is at or below it, its receipt (none: it was pruned).
// Each is a lookup of a primary key: the subqueries are not joined with
// the tables as a whole (OFFSET 0 keeps them apart), whatever the generic
// plan guesses of the arrays' length.
const resolveSQL = `
SELECT q.client_id, q.seq, coalesce(c.last_seq, 0), r.status, coalesce(r.code, ''), coalesce(r.message, ''),
  coalesce(r.txid, 0), coalesce(r.xid8, ''), coalesce(r.lsn, ''), r.detail::text
FROM unnest($1::text[], $2::int8[]) AS q(client_id, seq)
LEFT JOIN LATERAL (SELECT last_seq FROM volt.clients WHERE client_id = q.client_id OFFSET 0) c ON true
LEFT JOIN LATERAL (SELECT * FROM volt.receipts WHERE client_id = q.client_id AND seq = q.seq AND q.seq <= c.last_seq OFFSET 0) r ON true`

// receiptDetail holds what a rejection returns beyond code and message.
type receiptDetail struct {
	Constraint string          `json:"constraint,omitempty"`
	Row        json.RawMessage `json:"row,omitempty"`
}

// readReceipts reads resolveSQL's rows into the jobs: each client's
// last_seq, and the stored result of every seq at or below it.
func readReceipts(br pgx.BatchResults, jobs []*job) error {
	byClient := map[string]*job{}
	for _, j := range jobs {
		byClient[j.clientID] = j
		j.lastSeq = 0
		if j.known == nil {
			j.known = map[int64]volt.MutationResult{}
		}
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("read receipts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var clientID string
		var seq, last, txid int64
		var status, detail *string
		r := volt.MutationResult{Replayed: true}
		if err := rows.Scan(&clientID, &seq, &last, &status, &r.Code, &r.Message, &txid, &r.Xid8, &r.LSN, &detail); err != nil {
			return fmt.Errorf("read receipts: %w", err)
		}
		j := byClient[clientID]
		if j == nil {
			continue
		}
		j.lastSeq = last
		if seq > last {
			continue
		}
		r.Seq = seq
		switch {
		case status == nil:
			// Receipts were pruned: the seq is behind the server.
			r = outOfOrder(seq, last)
			r.Message = fmt.Sprintf("seq %d was processed and its receipt removed; the server expects seq %d", seq, last+1)
		default:
			r.Status, r.Txid = *status, uint64(txid)
			if detail != nil {
				var d receiptDetail
				if err := json.Unmarshal([]byte(*detail), &d); err == nil {
					r.Constraint, r.Row = d.Constraint, d.Row
				}
			}
		}
		j.known[seq] = r
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read receipts: %w", err)
	}
	return nil
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
