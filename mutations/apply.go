package mutations

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
)

// Apply runs the request's transactions in order and returns one result
// per transaction. It never fails as a whole: when Postgres is unreachable
// every result is volt.StatusRetry. The transactions are applied in
// batches (batch.go): one Postgres transaction for a chunk of up to
// chunkTransactions of them (chunkMutations mutations), together with the transactions of other requests
// queued meanwhile, each in a savepoint of its own, with one COMMIT; a
// chunk is answered once its batch has committed. Accepted results carry
// the batch's txid and an upper bound of its commit LSN read right after
// its COMMIT; with req.Wait volt.WaitLSN, Apply then waits (holding no
// connection) for the exact ones. Apply does not check
// Options.ClientAllowed nor serialise requests of one client (ServeHTTP
// does): its caller is trusted. Cancelling ctx does not stop a batch
// that has started: Apply waits for it.
func (h *Handler) Apply(ctx context.Context, principal any, req *volt.MutationRequest) []volt.MutationResult {
	ctx = context.WithValue(context.WithoutCancel(ctx), principalKey{}, principalValue{principal: principal, clientID: req.ClientID})
	results := make([]volt.MutationResult, 0, len(req.Transactions))
	deps := newDependencies()
	for start := 0; start < len(req.Transactions); {
		txs, size := chunk(req.Transactions[start:])
		start += len(txs)
		j := &job{ctx: ctx, clientID: req.ClientID, txs: txs, size: size, deps: deps, done: make(chan struct{})}
		h.submit(j)
		results = append(results, j.results...)
		last := results[len(results)-1]
		switch {
		case last.Status == volt.StatusRetry:
			results = fillRest(results, req.Transactions[len(results):], volt.MutationResult{Status: volt.StatusRetry, Message: "an earlier transaction must be retried first"})
		case last.Code == volt.CodeOutOfOrder:
			results = fillRest(results, req.Transactions[len(results):], last)
		default:
			continue
		}
		break
	}
	if req.Wait == volt.WaitLSN {
		var accepted []int
		for i, r := range results {
			if r.Status == volt.StatusAccepted && !r.Replayed && r.Xid8 != "" {
				accepted = append(accepted, i)
			}
		}
		h.commitLSNs(ctx, results, accepted)
	}
	return results
}

// commitLSNs replaces the upper bounds of the transactions this request
// committed with their exact commit LSNs, as replication reports them
// (Options.LSN). It runs once all of them are committed, so the wait for
// replication to deliver them is paid once per request, not once per
// transaction; and it holds no connection while it waits. The wait is
// bounded by Options.LSNWait for the whole request, since replication is
// shared: when other writers put it behind, a write keeps its upper bound
// instead of waiting for their WAL. Once the resolver cannot tell one, the
// rest keep theirs without waiting.
func (h *Handler) commitLSNs(ctx context.Context, results []volt.MutationResult, accepted []int) {
	if len(accepted) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, h.opts.LSNWait)
	defer cancel()
	for _, i := range accepted {
		lsn, err := h.opts.LSN.CommitLSN(wctx, results[i].Xid8)
		if err != nil || lsn == 0 {
			return
		}
		results[i].LSN = strconv.FormatUint(lsn, 10)
	}
}

func fillRest(results []volt.MutationResult, rest []volt.ClientTransaction, r volt.MutationResult) []volt.MutationResult {
	for _, ct := range rest {
		r.Seq = ct.Seq
		results = append(results, r)
	}
	return results
}

// notNext answers a seq that execute found is not the client's next one:
// the stored result of its earlier delivery, or out_of_order. next is set
// when it is the next one after all: the client had no row yet, and now
// has one.
func (h *Handler) notNext(ctx context.Context, conn txQuerier, clientID string, ct volt.ClientTransaction, deps *dependencies) (r volt.MutationResult, next bool) {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		last, err := lockClient(ctx, tx, clientID)
		if err != nil {
			return err
		}
		switch {
		case ct.Seq <= last:
			r, err = storedResult(ctx, tx, clientID, ct.Seq, last)
			return err
		case ct.Seq != last+1:
			r = outOfOrder(ct.Seq, last)
		default:
			next = true
			r = retryResult(errors.New("the client's queue changed while the transaction was applied"))
		}
		return nil
	})
	if err != nil {
		return retryResult(err), false
	}
	if r.Replayed && r.Status == volt.StatusRejected {
		deps.reject(ct.Seq, h.identities(ctx, conn, ct))
	}
	return r, next
}

// reject rolls back the failed attempt and records the rejection in a
// transaction of its own; transient failures record nothing.
func (h *Handler) reject(ctx context.Context, conn txQuerier, tx pgx.Tx, clientID string, ct volt.ClientTransaction, steps []step, deps *dependencies, cause error) volt.MutationResult {
	if tx != nil {
		_ = tx.Rollback(ctx)
	}
	r, final := outcome(cause)
	if !final {
		return r
	}
	r = h.storeRejection(ctx, conn, clientID, ct.Seq, r)
	switch {
	case r.Status != volt.StatusRejected:
	case r.Replayed:
		deps.reject(ct.Seq, h.identities(ctx, conn, ct))
	default:
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
