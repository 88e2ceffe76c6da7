package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/voltsync/volt"
)

// ShapeChange tells a subscriber what one batch did to a Shape. It is
// delivered after the batch has been applied.
type ShapeChange struct {
	// MustRefetch: the shape was replaced and every row dropped; the rows
	// come again in later batches.
	MustRefetch bool
	// Changes are the batch's changes, in order, including the deletes of
	// rows that a move-out took out of the shape (Change.MovedOut).
	Changes []*Change
	// Moves are the batch's move events (shapes with subqueries).
	Moves []*Move
	// UpToDate: the rows are now a consistent state of the shape.
	UpToDate bool
	// Handle and Offset are the stream's position after the batch.
	Handle, Offset string
}

// Shape keeps the current rows of a shape, following it with a Stream.
// Create it with Client.Shape and call Run; the other methods are safe to call
// from any goroutine, before, during and after Run.
type Shape struct {
	stream *Stream

	mu       sync.Mutex
	rows     map[string]Row
	moves    MoveTracker
	upToDate bool
	lsn      uint64 // global_last_seen_lsn of the last up-to-date; 0 after a must-refetch
	txids    txidTracker
	changed  chan struct{} // closed and replaced whenever state changes
	stopErr  error         // why Run returned; nil while it runs or before
	sink     rowSink       // the typed rows of a TypedShape, or nil

	subMu  sync.Mutex
	subs   []*subscriber
	nextID int
}

// rowSink keeps a second form of the rows, updated under Shape.mu.
type rowSink interface {
	put(key string, row Row) error
	remove(key string)
	reset()
}

type subscriber struct {
	id int
	fn func(ShapeChange)
}

// newShape returns a Shape of opts; it syncs nothing until Run.
func newShape(opts shapeOptions) (*Shape, error) {
	st, err := newStream(opts)
	if err != nil {
		return nil, err
	}
	return &Shape{stream: st, rows: map[string]Row{}, changed: make(chan struct{})}, nil
}

// Stream returns the shape's stream, for its Handle and Offset.
func (sh *Shape) Stream() *Stream { return sh.stream }

// Run follows the shape until ctx ends or the stream fails, and returns
// what Stream.Run returns. After it returns, the Await methods fail with
// ErrStopped until Run is called again.
func (sh *Shape) Run(ctx context.Context) error {
	sh.mu.Lock()
	sh.stopErr = nil
	sh.mu.Unlock()
	err := sh.stream.Run(ctx, sh.apply)
	sh.mu.Lock()
	sh.stopErr = err
	if sh.stopErr == nil {
		sh.stopErr = errors.New("stream ended")
	}
	sh.broadcastLocked()
	sh.mu.Unlock()
	return err
}

// apply applies one batch, wakes waiters and tells subscribers. It fails
// only for a row that a TypedShape cannot decode; the rows then hold the
// batch up to that row.
func (sh *Shape) apply(b Batch) error {
	sc := ShapeChange{Handle: b.Handle, Offset: b.Offset, UpToDate: b.UpToDate()}
	sh.mu.Lock()
	err := sh.applyEvents(b.Events, &sc)
	sh.upToDate = sc.UpToDate && err == nil
	sh.broadcastLocked()
	sh.mu.Unlock()
	if err != nil {
		return err
	}
	sh.notify(sc)
	return nil
}

// applyEvents applies a batch's events (sh.mu held).
func (sh *Shape) applyEvents(events []Event, sc *ShapeChange) error {
	for _, ev := range events {
		switch e := ev.(type) {
		case *Change:
			sh.moves.Change(e)
			if err := sh.applyChange(e); err != nil {
				return err
			}
			sh.txids.change(e.Txids)
			sc.Changes = append(sc.Changes, e)
		case *Move:
			sc.Changes = append(sc.Changes, sh.applyMove(e)...)
			sh.txids.change(e.Txids)
			sc.Moves = append(sc.Moves, e)
		case *UpToDate:
			sh.txids.upToDate()
			sh.lsn = max(sh.lsn, e.LSN)
		case *SnapshotEnd:
			sh.txids.snapshot(e)
		case *MustRefetch:
			clear(sh.rows)
			if sh.sink != nil {
				sh.sink.reset()
			}
			sh.moves.Reset()
			sh.txids.refetch()
			sh.lsn = 0
			sc.MustRefetch = true
		}
	}
	return nil
}

// applyChange applies one change to the rows (sh.mu held): inserts
// replace, updates merge the columns they carry, deletes remove. Stored
// rows are never modified in place (All hands them out).
func (sh *Shape) applyChange(c *Change) error {
	switch c.Operation {
	case volt.OpInsert:
		sh.rows[c.Key] = c.Value.clone()
	case volt.OpUpdate:
		row := sh.rows[c.Key].clone()
		for k, v := range c.Value {
			row[k] = v
		}
		sh.rows[c.Key] = row
	case volt.OpDelete:
		delete(sh.rows, c.Key)
		if sh.sink != nil {
			sh.sink.remove(c.Key)
		}
		return nil
	}
	if sh.sink != nil {
		if err := sh.sink.put(c.Key, sh.rows[c.Key]); err != nil {
			return fmt.Errorf("row %s: %w", c.Key, err)
		}
	}
	return nil
}

// applyMove applies a move event to the rows (sh.mu held) and returns the
// deletes of the rows it took out of the shape.
func (sh *Shape) applyMove(m *Move) []*Change {
	var dels []*Change
	for _, key := range sh.moves.Move(m) {
		row, ok := sh.rows[key]
		if !ok {
			continue
		}
		delete(sh.rows, key)
		if sh.sink != nil {
			sh.sink.remove(key)
		}
		dels = append(dels, &Change{Key: key, Operation: volt.OpDelete, Value: row.clone(), MovedOut: true})
	}
	return dels
}

// broadcastLocked wakes everything waiting for a change (sh.mu held).
func (sh *Shape) broadcastLocked() {
	close(sh.changed)
	sh.changed = make(chan struct{})
}

// Subscribe calls fn after each batch is applied, on Run's goroutine, in
// order, with every batch: a slow fn holds up the stream (nothing is
// buffered or dropped). fn may read the Shape and unsubscribe, but must
// not wait for later batches. The returned function unsubscribes.
func (sh *Shape) Subscribe(fn func(ShapeChange)) (unsubscribe func()) {
	sh.subMu.Lock()
	defer sh.subMu.Unlock()
	sh.nextID++
	id := sh.nextID
	sh.subs = append(sh.subs, &subscriber{id: id, fn: fn})
	return func() {
		sh.subMu.Lock()
		defer sh.subMu.Unlock()
		sh.subs = slices.DeleteFunc(sh.subs, func(s *subscriber) bool { return s.id == id })
	}
}

func (sh *Shape) notify(sc ShapeChange) {
	sh.subMu.Lock()
	subs := slices.Clone(sh.subs)
	sh.subMu.Unlock()
	for _, s := range subs {
		s.fn(sc)
	}
}

// All returns an iterator over the current rows, ordered by key, with
// their keys: the rows as of the call, without copying them. The rows are
// shared with the Shape: read them, do not modify them. The loop body may
// call the shape's methods.
func (sh *Shape) All() iter.Seq2[string, Row] {
	return func(yield func(string, Row) bool) {
		sh.mu.Lock()
		keys := sh.keysLocked()
		rows := make([]Row, len(keys))
		for i, k := range keys {
			rows[i] = sh.rows[k]
		}
		sh.mu.Unlock()
		for i, k := range keys {
			if !yield(k, rows[i]) {
				return
			}
		}
	}
}

// Rows returns a copy of the current rows ordered by key (All iterates
// without copying).
func (sh *Shape) Rows() []Row {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	keys := sh.keysLocked()
	rows := make([]Row, len(keys))
	for i, k := range keys {
		rows[i] = sh.rows[k].clone()
	}
	return rows
}

// Keys returns the keys of the current rows, sorted.
func (sh *Shape) Keys() []string {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.keysLocked()
}

func (sh *Shape) keysLocked() []string {
	keys := make([]string, 0, len(sh.rows))
	for k := range sh.rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Get returns a copy of the row with key.
func (sh *Shape) Get(key string) (Row, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	row, ok := sh.rows[key]
	return row.clone(), ok
}

// Len returns the number of rows.
func (sh *Shape) Len() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.rows)
}

// UpToDate reports whether the last batch ended at the head of the log.
func (sh *Shape) UpToDate() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.upToDate
}

// wait blocks until cond (called with sh.mu held) holds, ctx ends or Run
// returns. When ctx ends while Run is retrying failed requests, the error
// is a *RetryError that wraps the last failure too.
func (sh *Shape) wait(ctx context.Context, cond func() bool) error {
	for {
		sh.mu.Lock()
		done, stopped, ch := cond(), sh.stopErr, sh.changed
		sh.mu.Unlock()
		if done {
			return nil
		}
		if stopped != nil {
			return fmt.Errorf("%w: %w", ErrStopped, stopped)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return sh.stream.retryError(context.Cause(ctx))
		}
	}
}

// WaitUpToDate waits until the shape is up to date.
func (sh *Shape) WaitUpToDate(ctx context.Context) error {
	return sh.wait(ctx, func() bool { return sh.upToDate })
}

// AwaitTxid waits until the Postgres transaction txid (the 32-bit xid,
// pg_current_xact_id()::xid) is visible in the shape: a change of it was
// followed by an up-to-date, or a snapshot-end includes it. A transaction
// that changes no row of the shape after its initial snapshot never
// resolves: bound ctx.
func (sh *Shape) AwaitTxid(ctx context.Context, txid uint32) error {
	return sh.wait(ctx, func() bool { return sh.txids.visible(txid) })
}
