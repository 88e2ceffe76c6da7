package client

import (
	"context"
	"strconv"
	"sync"
)

// ReceiptsTable is the table where volt's write endpoint records the
// outcome of each client transaction.
const ReceiptsTable = "volt.receipts"

// Receipt is the outcome of one client transaction sent to volt's write
// endpoint (POST /v1/mutations), as recorded in volt.receipts.
type Receipt struct {
	ClientID string
	Seq      int64
	// Status is "accepted" or "rejected" (volt.StatusAccepted, …).
	Status string
	// Code and Message say why a transaction was rejected.
	Code, Message string
	// Txid is the 32-bit xid of an accepted transaction (for AwaitTxid on
	// other shapes); Xid8 is its 64-bit id, decimal.
	Txid uint32
	Xid8 string
	// LSN is a WAL position at or after the commit, decimal, if recorded.
	LSN string
}

// AwaitReceipt waits until the shape, a shape of volt.receipts (see
// Client.ReceiptShape), holds the receipt of clientID's transaction seq, and
// returns it.
func (sh *Shape) AwaitReceipt(ctx context.Context, clientID string, seq int64) (Receipt, error) {
	var r Receipt
	err := sh.wait(ctx, func() bool {
		for _, row := range sh.rows {
			if n, ok := asInt(row["seq"]); ok && n == seq && asString(row["client_id"]) == clientID {
				r = receiptOf(row)
				return true
			}
		}
		return false
	})
	return r, err
}

// AwaitReceipt follows the receipts of clientID until the receipt of seq
// arrives, and returns it. It is ReceiptShape, Run and Shape.AwaitReceipt
// for one wait; keep a receipt Shape instead to wait for many.
func (c *Client) AwaitReceipt(ctx context.Context, clientID string, seq int64) (Receipt, error) {
	sh, err := c.ReceiptShape(clientID)
	if err != nil {
		return Receipt{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sh.Run(ctx) // its error reaches AwaitReceipt as ErrStopped
	}()
	r, err := sh.AwaitReceipt(ctx, clientID, seq)
	cancel()
	wg.Wait()
	return r, err
}

func receiptOf(row Row) Receipt {
	seq, _ := asInt(row["seq"])
	txid, _ := asInt(row["txid"])
	return Receipt{
		ClientID: asString(row["client_id"]),
		Seq:      seq,
		Status:   asString(row["status"]),
		Code:     asString(row["code"]),
		Message:  asString(row["message"]),
		Txid:     uint32(txid),
		Xid8:     asString(row["xid8"]),
		LSN:      asString(row["lsn"]),
	}
}

// asString returns a text value ("" for NULL).
func asString(v any) string {
	s, _ := v.(string)
	return s
}

// asInt returns an integer value, typed or text; ok is false for NULL.
func asInt(v any) (n int64, ok bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}
