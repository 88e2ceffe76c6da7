package mutations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

// Apply runs the request's transactions in order and returns one result
// per transaction. It never fails as a whole: when Postgres is unreachable
// every result is volt.StatusRetry. Each transaction takes a connection of
// the pool for its own duration only, and a free connection goes first to
// the request that has run the fewest transactions (slots), so a long
// request does not keep other writers waiting for more than one
// transaction; the wait for commit LSNs holds no connection. Apply does not check Options.ClientAllowed nor
// serialise requests of one client (ServeHTTP does): its caller is trusted.
func (h *Handler) Apply(ctx context.Context, principal any, req *volt.MutationRequest) []volt.MutationResult {
	ctx = context.WithValue(ctx, principalKey{}, principalValue{principal: principal, clientID: req.ClientID})
	results := make([]volt.MutationResult, 0, len(req.Transactions))
	deps := newDependencies()
	// accepted are the results this request committed; their LSNs are
	// filled in once all of them are committed.
	var accepted []int
	for i, ct := range req.Transactions {
		r := h.applyTxn(ctx, req.ClientID, ct, deps, i)
		r.Seq = ct.Seq
		if r.Status == volt.StatusAccepted && r.Xid8 != "" && r.LSN == "" {
			accepted = append(accepted, len(results))
		}
		results = append(results, r)
		switch {
		case r.Status == volt.StatusRetry:
			// Later seqs must not overtake this one.
			results = fillRest(results, req.Transactions[i+1:], volt.MutationResult{Status: volt.StatusRetry, Message: "an earlier transaction must be retried first"})
		case r.Code == volt.CodeOutOfOrder:
			results = fillRest(results, req.Transactions[i+1:], r)
		default:
			continue
		}
		break
	}
	h.commitLSNs(ctx, results, accepted)
	return results
}

// applyTxn decides one client transaction on a connection of its own;
// turns is how many the request has run before it (see slots).
func (h *Handler) applyTxn(ctx context.Context, clientID string, ct volt.ClientTransaction, deps *dependencies, turns int) volt.MutationResult {
	if err := h.slots.acquire(ctx, turns); err != nil {
		return retryResult(err)
	}
	defer h.slots.release()
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		return retryResult(err)
	}
	defer conn.Release()
	return h.applyOne(ctx, conn, clientID, ct, deps, false)
}

// commitLSNs fills in the commit LSN of the transactions this request
// committed. It runs once all of them are committed, so the wait for
// replication to deliver them (a WAL flush, up to wal_writer_delay with
// synchronous_commit off) is paid once per request, not once per
// transaction; and it holds no connection while it waits. The wait is
// bounded by Options.LSNWait for the whole request, since replication is
// shared: when other writers put it behind, a write is answered with the
// upper bound instead of waiting for their WAL. Once the resolver cannot
// tell one, the rest get the upper bound without waiting.
func (h *Handler) commitLSNs(ctx context.Context, results []volt.MutationResult, accepted []int) {
	if len(accepted) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, h.opts.LSNWait)
	defer cancel()
	var missing []int
	for _, i := range accepted {
		if len(missing) == 0 {
			if lsn, err := h.opts.LSN.CommitLSN(wctx, results[i].Xid8); err == nil && lsn != 0 {
				results[i].LSN = fmt.Sprint(lsn)
				continue
			}
		}
		missing = append(missing, i)
	}
	if len(missing) == 0 {
		return
	}
	if err := h.slots.acquire(ctx, 0); err != nil {
		return
	}
	lsn, err := upperBoundLSN(ctx, h.pool)
	h.slots.release()
	if err != nil || lsn == 0 {
		return
	}
	for _, i := range missing {
		results[i].LSN = fmt.Sprint(lsn)
	}
}

func fillRest(results []volt.MutationResult, rest []volt.ClientTransaction, r volt.MutationResult) []volt.MutationResult {
	for _, ct := range rest {
		r.Seq = ct.Seq
		results = append(results, r)
	}
	return results
}

// applyOne decides one client transaction: replay, out of order,
// dependent, applied or rejected. fresh is set on the second attempt after
// a stale catalog.
func (h *Handler) applyOne(ctx context.Context, conn *pgxpool.Conn, clientID string, ct volt.ClientTransaction, deps *dependencies, fresh bool) volt.MutationResult {
	tx, err := conn.BeginTx(ctx, beginDeferred)
	if err != nil {
		r, _ := outcome(err)
		return r
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	last, err := lockClient(ctx, tx, clientID)
	if err != nil {
		// Nothing about the write: volt's own tables are missing or
		// unreachable. Never a final answer.
		return retryResult(err)
	}
	if ct.Seq <= last {
		r, err := storedResult(ctx, tx, clientID, ct.Seq, last)
		if err != nil {
			return retryResult(err)
		}
		if r.Status == volt.StatusRejected {
			deps.reject(ct.Seq, h.identities(ctx, tx, ct))
		}
		return r
	}
	if ct.Seq != last+1 {
		return outOfOrder(ct.Seq, last)
	}
	steps, err := h.prepare(ctx, tx, ct)
	if err != nil {
		return h.reject(ctx, conn, tx, clientID, ct, steps, deps, err)
	}
	if dep, ok := deps.blocking(steps); ok {
		err := Reject(volt.CodeDependent, "depends on rejected seq %d", dep)
		return h.reject(ctx, conn, tx, clientID, ct, steps, deps, err)
	}
	if err := h.run(ctx, tx, steps); err != nil {
		if catalogStale(err) && !fresh {
			_ = tx.Rollback(ctx)
			h.catalog.invalidate()
			return h.applyOne(ctx, conn, clientID, ct, deps, true)
		}
		return h.reject(ctx, conn, tx, clientID, ct, steps, deps, err)
	}
	return h.accept(ctx, conn, tx, clientID, ct.Seq)
}

// beginDeferred starts each transaction with every deferrable constraint
// deferred to COMMIT, in one round trip. Where synchronous_commit is off it
// is raised to local for the transaction: an accepted write is durable
// when it is answered (the client then forgets it), and its commit record
// reaches replication at once instead of after wal_writer_delay, so the
// answer can carry its exact commit LSN (commitLSNs).
var beginDeferred = pgx.TxOptions{BeginQuery: "BEGIN; SET CONSTRAINTS ALL DEFERRED; " +
	"SELECT set_config('synchronous_commit', 'local', true) WHERE current_setting('synchronous_commit') = 'off'"}

// run applies the steps.
func (h *Handler) run(ctx context.Context, tx pgx.Tx, steps []step) error {
	for _, s := range steps {
		var err error
		if s.row != nil {
			err = h.execRow(ctx, tx, s.row)
		} else {
			err = s.fn(ctx, tx, s.args)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// accept records the receipt and commits. A failing COMMIT (a deferred
// constraint, or a lost connection) is classified like any other error;
// after a lost connection the client retries and finds the stored result
// if the commit did happen.
func (h *Handler) accept(ctx context.Context, conn *pgxpool.Conn, tx pgx.Tx, clientID string, seq int64) volt.MutationResult {
	r := volt.MutationResult{Status: volt.StatusAccepted}
	var txid int64
	err := tx.QueryRow(ctx, acceptSQL, clientID, seq).Scan(&txid, &r.Xid8)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		out, final := outcome(err)
		if !final {
			return out
		}
		// A deferred constraint failed at COMMIT: nothing was applied.
		return h.storeRejection(ctx, conn, clientID, seq, out)
	}
	r.Txid = uint64(txid)
	return r // Apply fills in the commit LSN (commitLSNs)
}

// reject rolls back the failed attempt and records the rejection in a
// transaction of its own; transient failures record nothing.
func (h *Handler) reject(ctx context.Context, conn *pgxpool.Conn, tx pgx.Tx, clientID string, ct volt.ClientTransaction, steps []step, deps *dependencies, cause error) volt.MutationResult {
	_ = tx.Rollback(ctx)
	r, final := outcome(cause)
	if !final {
		return r
	}
	r = h.storeRejection(ctx, conn, clientID, ct.Seq, r)
	if r.Status == volt.StatusRejected {
		deps.reject(ct.Seq, idsOf(steps))
	}
	return r
}

func retryResult(err error) volt.MutationResult {
	return volt.MutationResult{Status: volt.StatusRetry, Message: clean(err.Error())}
}

func outOfOrder(seq, last int64) volt.MutationResult {
	r := rejected(volt.CodeOutOfOrder, fmt.Sprintf("seq %d is out of order: the server expects seq %d", seq, last+1))
	r.ExpectedSeq = last + 1
	return r
}

// principalKey carries the request's principal and client id in ctx.
type principalKey struct{}

type principalValue struct {
	principal any
	clientID  string
}

// Principal returns the principal Options.Authorize returned for the
// request (nil without Authorize); for named mutations.
func Principal(ctx context.Context) any { return principalFrom(ctx) }

// ClientID returns the client id of the request; for named mutations.
func ClientID(ctx context.Context) string {
	v, _ := ctx.Value(principalKey{}).(principalValue)
	return v.clientID
}

func principalFrom(ctx context.Context) any {
	v, _ := ctx.Value(principalKey{}).(principalValue)
	return v.principal
}
