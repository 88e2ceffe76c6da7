package mutations

import (
	"context"
	"fmt"
	"strconv"

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
	known := map[int64]volt.MutationResult{} // stored results a batch read for the whole request
	for start := 0; start < len(req.Transactions); {
		var last volt.MutationResult
		if r, ok := known[req.Transactions[start].Seq]; ok {
			// A replay: answered from the receipts, read with the first
			// chunk's (or an earlier one's).
			ct := req.Transactions[start]
			if r.Status == volt.StatusRejected && r.Replayed {
				deps.reject(ct.Seq, h.identities(ctx, h.pool, ct))
			}
			results = append(results, r)
			start++
			last = r
		} else {
			txs, size := chunk(req.Transactions[start:])
			j := &job{ctx: ctx, clientID: req.ClientID, txs: txs, rest: req.Transactions[start:], known: known, size: size, deps: deps, done: make(chan struct{})}
			start += len(txs)
			h.submit(j)
			results = append(results, j.results...)
			last = results[len(results)-1]
		}
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
