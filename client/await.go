package client

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"

	"github.com/voltsync/volt"
)

// WriteAndAwait is pattern 1, online writes: it sends one client
// transaction and returns once the server accepted it and the write is
// visible in every shape given, or returns its rejection as a
// *RejectedError (errors.Is ErrRejected) along with the result.
//
// A shape of volt.receipts (Client.ReceiptShape for this Writer's ClientID)
// is awaited for the transaction's receipt. Every other shape is awaited
// for the transaction's echo: a change with its txid followed by an
// up-to-date, or a snapshot that includes it (Shape.AwaitTxid). A write
// that changes no row of a shape has no echo there, so a shape is also
// done when an up-to-date reports a global_last_seen_lsn at or past the
// write's commit: the server has then processed the write, and the rows it
// changed are not in the shape. The commit position comes from the receipt
// when a receipts shape is given (its change carries the exact commit
// LSN), otherwise from the result's lsn, an upper bound that a quiet
// server may not pass until another transaction commits. So:
//
//   - pass a receipts shape along with shapes the write may not touch; a
//     live shape then resolves at its next up-to-date, within one
//     long-poll timeout (20 s on volt);
//   - without one, pass only shapes that contain the rows the write
//     changes, or bound ctx. Replayed results (the response of an earlier
//     attempt was lost) carry no lsn.
//
// The shapes must be running (Shape.Run). On error other than rejection
// the transaction's fate is as for Write.
func (w *Writer) WriteAndAwait(ctx context.Context, muts []volt.Mutation, shapes ...*Shape) (volt.MutationResult, error) {
	var data, receipts []*Shape
	var watches []*receiptWatch
	for _, sh := range shapes {
		if sh.isReceipts() {
			receipts = append(receipts, sh)
			rw := watchReceipts(sh, w.ClientID(), nil)
			defer rw.stop()
			watches = append(watches, rw)
		} else {
			data = append(data, sh)
		}
	}
	res, err := w.Write(ctx, muts)
	if err != nil {
		return res, err
	}
	for _, sh := range receipts {
		if _, err := sh.AwaitReceipt(ctx, w.ClientID(), res.Seq); err != nil {
			return res, err
		}
	}
	resLSN, _ := strconv.ParseUint(res.LSN, 10, 64)
	bound := func() uint64 {
		b := resLSN
		for _, rw := range watches {
			if l := rw.commitLSN(res.Seq); l > 0 && (b == 0 || l < b) {
				b = l
			}
		}
		return b
	}
	for _, sh := range data {
		err := waitShapes(ctx, sh, receipts, func() bool {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			if res.Txid != 0 && sh.txids.visible(uint32(res.Txid)) {
				return true
			}
			b := bound()
			return b > 0 && sh.lsn >= b
		})
		if err != nil {
			return res, fmt.Errorf("await txid %d: %w", res.Txid, err)
		}
	}
	return res, nil
}

// isReceipts reports whether sh follows volt.receipts.
func (sh *Shape) isReceipts() bool { return sh.stream.opts.Table == ReceiptsTable }

// waitShapes waits until cond holds, re-checking it whenever sh or one of
// also changes; it fails when sh stops or ctx ends.
func waitShapes(ctx context.Context, sh *Shape, also []*Shape, cond func() bool) error {
	for {
		sh.mu.Lock()
		stopped, ch := sh.stopErr, sh.changed
		sh.mu.Unlock()
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)},
		}
		for _, o := range also {
			o.mu.Lock()
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(o.changed)})
			o.mu.Unlock()
		}
		if cond() {
			return nil
		}
		if stopped != nil {
			return fmt.Errorf("%w: %w", ErrStopped, stopped)
		}
		if i, _, _ := reflect.Select(cases); i == 0 {
			return sh.stream.retryError(context.Cause(ctx))
		}
	}
}

// receiptWatch records the commit LSN of a client's receipts as their
// changes arrive in a receipts shape.
type receiptWatch struct {
	clientID string
	unsub    func()
	mu       sync.Mutex
	lsn      map[int64]uint64
}

// watchReceipts subscribes to sh; then, if set, is called after each batch
// that brought receipts of clientID, on sh's Run goroutine.
func watchReceipts(sh *Shape, clientID string, then func()) *receiptWatch {
	rw := &receiptWatch{clientID: clientID, lsn: map[int64]uint64{}}
	rw.unsub = sh.Subscribe(func(sc ShapeChange) {
		found := false
		rw.mu.Lock()
		for _, c := range sc.Changes {
			if c.Operation == volt.OpDelete || c.LSN == 0 || asString(c.Value["client_id"]) != clientID {
				continue
			}
			if seq, ok := asInt(c.Value["seq"]); ok {
				rw.lsn[seq] = c.LSN
				found = true
			}
		}
		rw.mu.Unlock()
		if found && then != nil {
			then()
		}
	})
	return rw
}

func (rw *receiptWatch) commitLSN(seq int64) uint64 {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.lsn[seq]
}

func (rw *receiptWatch) forget(seq int64) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	delete(rw.lsn, seq)
}

func (rw *receiptWatch) stop() { rw.unsub() }
