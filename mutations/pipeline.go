package mutations

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/voltsync/volt"
)

// A batch of client transactions goes to Postgres in as few round trips
// as their steps allow: BEGIN, the claim of the seqs, each transaction's
// row mutations, the receipts, COMMIT and a read of the WAL position are
// sent together (pgx pipeline,
// statements prepared once per connection by pgx's statement cache).
// Statements whose outcome must stop the transaction raise an error
// (volt.fail), and Postgres then skips every later one, COMMIT included.
// Only what needs Go between two statements splits the transaction into
// more round trips: a named mutation, a row that is locked and checked
// before it is written (Options.Check, checked tables), and the Check of
// inserted rows before COMMIT.

// Codes volt.fail raises.
const (
	codeNotNext = "VLT01" // a seq of the claim is not its client's next one
	codeMissing = "VLT02" // the row to update or delete does not exist
)

// claimSQL begins a batch. For each client $1[i] it advances last_seq
// from $2[i]-1 to $3[i], the seqs of the batch's transactions of that
// client (each one is then accepted or rejected: either way recorded);
// a client without a row gets one when $2[i] is 1 (its first write takes
// no slower path). The update holds the clients' rows until the batch
// ends (requests for one client are serialised per Postgres transaction,
// across servers too) and, under READ COMMITTED, re-checks last_seq on the
// newest row version once it has the lock (volt.claim_seqs, one lookup
// of the primary key per client). When any first seq is not the
// next one, it raises codeNotNext and Postgres skips the rest of the
// batch: the receipts are then read (resolveSQL). It returns the 32-bit
// xid (as in the shape stream's txids) and the 64-bit xid8. Where
// synchronous_commit is off it is raised to local for the transaction: an
// accepted write is durable when it is answered (the client then forgets
// it), and its commit record reaches replication at once.
const claimSQL = `
SELECT volt.claim_seqs($1::text[], $2::int8[], $3::int8[]), pg_current_xact_id()::text,
  CASE WHEN current_setting('synchronous_commit') = 'off' THEN set_config('synchronous_commit', 'local', true) END`

// receiptsSQL records the receipts of a batch, accepted and rejected, in
// one statement; accepted ones carry the batch's txid and xid8.
const receiptsSQL = `
INSERT INTO volt.receipts (client_id, seq, status, code, message, detail, txid, xid8)
SELECT r.client_id, r.seq, r.status, nullif(r.code, ''), nullif(r.message, ''), nullif(r.detail, '')::jsonb,
  CASE WHEN r.status = 'accepted' THEN pg_current_xact_id()::xid::text::bigint END,
  CASE WHEN r.status = 'accepted' THEN pg_current_xact_id()::text END
FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[]) AS r(client_id, seq, status, code, message, detail)`

// setLastSeqSQL sets back the last_seq of clients whose claimed seqs were
// not all decided (a transient failure stopped their request):
// volt.set_last_seqs, one lookup of the primary key per client, as in the
// claim.
const setLastSeqSQL = `SELECT volt.set_last_seqs($1::text[], $2::int8[])`

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
	claim  int      // the index of the claim (claimSQL), or -1
}

func newPipe(begin bool) *pipe {
	p := &pipe{cur: -1, claim: -1}
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
