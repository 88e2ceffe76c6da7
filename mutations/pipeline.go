package mutations

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/voltsync/volt"
)

// A client transaction goes to Postgres in as few round trips as its
// steps allow: BEGIN, the seq check with the receipt, the row mutations,
// COMMIT and a read of the WAL position are sent together (pgx pipeline,
// statements prepared once per connection by pgx's statement cache).
// Statements whose outcome must stop the transaction raise an error
// (volt.fail), and Postgres then skips every later one, COMMIT included.
// Only what needs Go between two statements splits the transaction into
// more round trips: a named mutation, a row that is locked and checked
// before it is written (Options.Check, checked tables), and the Check of
// inserted rows before COMMIT.

// Codes volt.fail raises.
const (
	codeNotNext = "VLT01" // the seq is not the client's next one
	codeMissing = "VLT02" // the row to update or delete does not exist
)

// nextSeqSQL advances the client's last_seq to $2 when $2 is the next
// seq, and writes the accepted receipt, returning the 32-bit xid (as in
// the shape stream's txids) and the 64-bit xid8. A client without a row
// gets one when $2 is 1 (its first write takes no slower path). The
// upsert holds the client's volt.clients row until the transaction ends
// (requests for one client are serialised per transaction) and, under
// READ COMMITTED, re-checks last_seq on the newest row version once it
// has the lock. Any other seq raises codeNotNext, and the row it may have
// inserted goes with the rolled-back savepoint: the slow path (notNext)
// then tells a replay from out_of_order. Where synchronous_commit is off
// it is raised to local for the transaction: an accepted write is durable
// when it is answered (the client then forgets it), and its commit record
// reaches replication at once.
const nextSeqSQL = `
WITH c AS (
  INSERT INTO volt.clients AS c (client_id, last_seq) VALUES ($1, $2)
  ON CONFLICT (client_id) DO UPDATE SET last_seq = $2 WHERE c.last_seq = $2 - 1
  RETURNING client_id
), r AS (
  INSERT INTO volt.receipts (client_id, seq, status, txid, xid8)
  SELECT client_id, $2, 'accepted', pg_current_xact_id()::xid::text::bigint, pg_current_xact_id()::text FROM c
  WHERE $2 = 1 OR EXISTS (SELECT FROM volt.clients WHERE client_id = $1)
  RETURNING txid, xid8
)
SELECT coalesce((SELECT txid FROM r), volt.fail('` + codeNotNext + `', 'the seq is not the next one of the client')),
  (SELECT xid8 FROM r),
  CASE WHEN current_setting('synchronous_commit') = 'off' THEN set_config('synchronous_commit', 'local', true) END`

// walPositionSQL runs after COMMIT: the WAL insert position then is at or
// after the end of the transaction's commit record (an upper bound of its
// commit LSN).
const walPositionSQL = `SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8`

// ifMissing makes an UPDATE or DELETE … RETURNING 1 fail when it found
// no row.
func ifMissing(sql string) string {
	return "WITH w AS (" + sql + " RETURNING 1) SELECT volt.fail('" + codeMissing + "', 'the row does not exist') WHERE NOT EXISTS (SELECT FROM w)"
}

// pipe is the statements of one round trip and how to read each result.
type pipe struct {
	b      pgx.Batch
	reads  []func(pgx.BatchResults) error
	ops    []*rowOp // each statement's row mutation, or nil
	owners []int    // each statement's member of the batch, or -1
	cur    int      // the member whose statements are being queued
}

func newPipe(begin bool) *pipe {
	p := &pipe{cur: -1}
	if begin {
		p.b.BeginTx(pgx.TxOptions{})
		p.add(nil, nil)
	}
	return p
}

// add records how to read the statement just queued (nil: Exec).
func (p *pipe) add(op *rowOp, read func(pgx.BatchResults) error) {
	if read == nil {
		read = func(br pgx.BatchResults) error { _, err := br.Exec(); return err }
	}
	p.reads, p.ops, p.owners = append(p.reads, read), append(p.ops, op), append(p.owners, p.cur)
}

func (p *pipe) exec(op *rowOp, sql string, args ...any) int {
	p.b.Queue(sql, args...)
	p.add(op, nil)
	return len(p.reads) - 1
}

func (p *pipe) scan(sql string, args []any, dest ...any) int {
	p.b.Queue(sql, args...)
	p.add(nil, func(br pgx.BatchResults) error { return br.QueryRow().Scan(dest...) })
	return len(p.reads) - 1
}

// commit queues COMMIT; a COMMIT that Postgres turned into a ROLLBACK (an
// earlier error of the transaction) fails.
func (p *pipe) commit() int {
	p.b.Queue("COMMIT")
	p.add(nil, func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = pgx.ErrTxCommitRollback
		}
		return err
	})
	return len(p.reads) - 1
}

// raised reports whether err is volt.fail's code.
func raised(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// pipelined reports whether a step can go to Postgres without Go running
// between it and the next statement.
func (h *Handler) pipelined(s step) bool {
	if s.row != nil && h.opts.CheckUsesTx != nil && h.opts.CheckUsesTx(s.row.m) {
		return false
	}
	return s.row != nil && (s.row.m.Op == volt.OpInsert || !h.locks(s.row))
}

// queueRow queues a pipelined row mutation; an insert's Check runs when
// its row is read. It reports whether a Check waits for the row.
func (h *Handler) queueRow(ctx context.Context, p *pipe, op *rowOp) (checked bool, err error) {
	var sql string
	var args sqlArgs
	switch op.m.Op {
	case volt.OpInsert:
		if sql, args, err = insertSQL(op); err != nil {
			return false, err
		}
		if h.opts.Check == nil {
			p.exec(op, sql, args...)
			return false, nil
		}
		p.b.Queue(sql+" RETURNING to_jsonb(r)", args...)
		p.add(op, func(br pgx.BatchResults) error {
			var row []byte
			if err := br.QueryRow().Scan(&row); err != nil {
				return err
			}
			return h.check(ctx, op, nil, row)
		})
		return true, nil
	case volt.OpUpdate:
		sql, args, err = updateSQL(op)
	default:
		sql, args, err = deleteSQL(op)
	}
	if err != nil {
		return false, err
	}
	p.exec(op, ifMissing(sql), args...)
	return false, nil
}
