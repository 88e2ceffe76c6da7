package shapecache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

// HandleTransaction routes one replicated transaction into the logs of the
// shapes it affects. Transactions are handled in commit order, by one
// goroutine (the replication reader); ones already handled (replayed after
// a reconnect) are skipped.
//
// Routing and conversion run under the cache's lock; the appends do not,
// because opening a closed log is file-system work that must not hold up
// requests. Appends to one log stay in commit order since only this
// goroutine appends to shapes whose snapshot identity is known.
func (c *Cache) HandleTransaction(ctx context.Context, tx *volt.Transaction) error {
	c.mu.Lock()
	if tx.CommitLSN <= c.lastProcessed.Load() && tx.CommitLSN != 0 {
		c.handledLocked(tx)
		c.mu.Unlock()
		return nil
	}
	work, err := c.routeLocked(tx)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	for i := range work {
		w := &work[i]
		w.appended, w.replayed, w.err = w.e.appendLive(w.entries, tx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range work {
		w := &work[i]
		switch {
		case w.e.IsGone():
		case w.err != nil:
			// A log that cannot be opened or written cannot be continued:
			// drop the shape (its clients re-sync through 409) rather
			// than stop replication for every other shape.
			c.Logger.Error("append to shape log", "handle", w.e.Handle, "err", w.err)
			c.removeLocked(w.e, "log cannot be written")
		case w.replayed:
			c.dirty[w.e] = struct{}{}
		case w.appended:
			w.e.rows += w.delta.rows
			w.e.ops += w.delta.ops
			c.dirty[w.e] = struct{}{}
			c.maybeCompactLocked(w.e)
		}
	}
	c.handledLocked(tx)
	return nil
}

// appendWork is one shape's part of a transaction, to append outside the
// cache's lock.
type appendWork struct {
	e        *Entry
	entries  []shapelog.Entry
	delta    delta
	appended bool
	replayed bool
	err      error
}

// routeLocked converts tx's changes for the shapes they affect. Entries
// for shapes whose snapshot identity is not known yet are buffered; the
// others are returned to be appended.
func (c *Cache) routeLocked(tx *volt.Transaction) ([]appendWork, error) {
	out := map[*Entry][]shape.Message{}
	var order []*Entry
	for i := range tx.Changes {
		ch := &tx.Changes[i]
		if ch.Kind == volt.Truncate {
			for _, rel := range ch.Truncated {
				c.rotateRelation(rel.ID, "truncate")
			}
			continue
		}
		c.checkRelationLocked(ch.Relation)
		var convErr error
		c.index.MatchChange(ch, func(e *Entry) {
			if convErr != nil {
				return
			}
			msgs, err := e.Shape.Convert(ch, uint64(2*i))
			if errors.Is(err, shape.ErrSchemaChanged) {
				c.removeLocked(e, "schema changed")
				delete(out, e)
				return
			}
			if err != nil {
				convErr = fmt.Errorf("convert change for shape %s: %w", e.Handle, err)
				return
			}
			if len(msgs) == 0 {
				return
			}
			if _, seen := out[e]; !seen {
				order = append(order, e)
			}
			out[e] = append(out[e], msgs...)
		})
		if convErr != nil {
			return nil, convErr
		}
	}
	var work []appendWork
	for _, e := range order {
		msgs, ok := out[e]
		if !ok || e.IsGone() {
			continue
		}
		if w, ok := c.frameLocked(e, tx, msgs); ok {
			work = append(work, w)
		}
	}
	return work, nil
}

// checkRelationLocked removes the shapes a relation's new definition does
// not fit, when the relation is seen for the first time in this stream or
// after a change of definition. Routing only shows a change to the shapes
// it can match, so the others learn of the change here.
func (c *Cache) checkRelationLocked(rel *volt.Relation) {
	if rel == nil || c.relSeen[rel.ID] == rel {
		return
	}
	if c.relSeen == nil {
		c.relSeen = map[uint32]*volt.Relation{}
	}
	c.relSeen[rel.ID] = rel
	for e := range c.byRel[rel.ID] {
		if e.Shape.CheckRelation(rel) != nil {
			c.removeLocked(e, "schema changed")
		}
	}
}

func (c *Cache) handledLocked(tx *volt.Transaction) {
	c.commits.note(tx.Xid, tx.CommitLSN)
	if tx.CommitLSN > c.lastProcessed.Load() {
		c.lastProcessed.Store(tx.CommitLSN)
	}
	if tx.EndLSN > c.handled {
		c.handled = tx.EndLSN
	}
	c.requestFlush()
}

func (c *Cache) requestFlush() {
	select {
	case c.flushReq <- struct{}{}:
	default:
	}
}

// frameLocked frames msgs as log entries. While e's snapshot identity is
// unknown they are buffered (ok false); otherwise they are returned for
// appendLive.
func (c *Cache) frameLocked(e *Entry, tx *volt.Transaction, msgs []shape.Message) (w appendWork, ok bool) {
	entries := make([]shapelog.Entry, len(msgs))
	var d delta
	for i, m := range msgs {
		entries[i] = shapelog.Entry{
			Offset: volt.Offset{LSN: tx.CommitLSN, Op: m.Op},
			JSON:   e.Shape.Frame(m, tx.CommitLSN, tx.Xid, i == len(msgs)-1),
		}
		d.add(m.Kind())
	}
	if e.snap == nil {
		e.pending = append(e.pending, bufferedTxn{lsn: tx.CommitLSN, xid: tx.Xid, entries: entries, delta: d})
		return appendWork{}, false
	}
	return appendWork{e: e, entries: entries, delta: d}, true
}

// delta is how a transaction changes a shape's row and message counts.
type delta struct{ rows, ops int64 }

func (d *delta) add(kind string) {
	d.ops++
	switch kind {
	case "insert":
		d.rows++
	case "delete":
		d.rows--
	}
}

func (c *Cache) rotateRelation(oid uint32, why string) {
	for e := range c.byRel[oid] {
		c.removeLocked(e, why)
	}
}

// flushLoop makes appended entries durable and then advances DurableLSN.
func (c *Cache) flushLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.flushReq:
		}
		c.flush()
	}
}

func (c *Cache) flush() {
	c.mu.Lock()
	target := c.handled
	dirty := make([]*Entry, 0, len(c.dirty))
	for e := range c.dirty {
		dirty = append(dirty, e)
	}
	clear(c.dirty)
	completed := c.completed
	c.completed = nil
	c.mu.Unlock()
	if err := c.syncLogs(dirty); err != nil {
		// Not durable: keep the slot where it is (the transactions will be
		// replayed after a restart) and keep these logs dirty, so no later
		// flush advances past them either.
		c.Logger.Error("sync shape logs", "err", err)
		c.mu.Lock()
		for _, d := range dirty {
			c.dirty[d] = struct{}{}
		}
		c.completed = append(c.completed, completed...)
		c.mu.Unlock()
		return
	}
	if err := c.catalogue(completed); err != nil {
		c.Logger.Error("add shapes to the catalog", "err", err)
		c.mu.Lock()
		c.completed = append(c.completed, completed...)
		c.mu.Unlock()
		return
	}
	if target > c.durable.Load() {
		c.durable.Store(target)
	}
}

// syncLogs fsyncs the given logs, several at a time (the disk serves
// parallel fsyncs far faster than serial ones).
func (c *Cache) syncLogs(entries []*Entry) error {
	return parallel(entries, func(e *Entry) error {
		if e.IsGone() {
			return nil
		}
		if err := e.sync(); err != nil && !e.IsGone() {
			return fmt.Errorf("shape %s: %w", e.Handle, err)
		}
		return nil
	})
}

// catalogue makes newly completed shapes durable and adds them to the
// catalog: their snapshots and directories (in parallel), then the store
// directory, then one catalog append and fsync for all of them.
func (c *Cache) catalogue(entries []*Entry) error {
	if len(entries) == 0 {
		return c.catalog.sync() // removals recorded since the last flush
	}
	if err := parallel(entries, func(e *Entry) error {
		err := e.ifOpen((*shapelog.Log).SyncSnapshot) // Close syncs it too
		if err == nil {
			err = c.Store.SyncDir(e.Handle)
		}
		if err != nil && !e.IsGone() {
			return fmt.Errorf("shape %s: %w", e.Handle, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := c.Store.SyncRoot(); err != nil {
		return err
	}
	c.mu.Lock()
	for _, e := range entries {
		if e.IsGone() {
			continue
		}
		rec := &catalogRecord{Handle: e.Handle, Table: e.Shape.Table, Definition: &e.Shape.Def, Key: e.Shape.Key, Snapshot: e.snap, Rows: e.rows, Ops: e.ops}
		rec.Terms, rec.Indexed = routeTerms(e.Shape)
		c.catalog.add(rec)
	}
	c.mu.Unlock()
	return c.catalog.sync()
}

// parallel runs fn for each entry on up to 16 goroutines and returns the
// first error.
func parallel(entries []*Entry, fn func(*Entry) error) error {
	if len(entries) <= 1 {
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for w := 0; w < min(16, len(entries)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(entries) || first.Load() != nil {
					return
				}
				if err := fn(entries[i]); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}
