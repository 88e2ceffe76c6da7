package shapecache

import (
	"context"
	"errors"
	"fmt"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

// HandleTransaction routes one replicated transaction into the logs of the
// shapes it affects. Transactions are handled in commit order; ones already
// handled (replayed after a reconnect) are skipped.
func (c *Cache) HandleTransaction(ctx context.Context, tx *volt.Transaction) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tx.CommitLSN <= c.lastProcessed.Load() && tx.CommitLSN != 0 {
		c.handledLocked(tx)
		return nil
	}
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
		for e := range c.byRel[ch.Relation.ID] {
			msgs, err := e.Shape.Convert(ch, uint64(2*i))
			if errors.Is(err, shape.ErrSchemaChanged) {
				c.removeLocked(e, "schema changed")
				delete(out, e)
				continue
			}
			if err != nil {
				return fmt.Errorf("convert change for shape %s: %w", e.Handle, err)
			}
			if len(msgs) == 0 {
				continue
			}
			if _, seen := out[e]; !seen {
				order = append(order, e)
			}
			out[e] = append(out[e], msgs...)
		}
	}
	for _, e := range order {
		msgs, ok := out[e]
		if !ok || e.IsGone() {
			continue
		}
		if err := c.appendTxn(e, tx, msgs); err != nil {
			return err
		}
	}
	c.handledLocked(tx)
	return nil
}

func (c *Cache) handledLocked(tx *volt.Transaction) {
	c.commits.note(tx.Xid, tx.CommitLSN)
	if tx.CommitLSN > c.lastProcessed.Load() {
		c.lastProcessed.Store(tx.CommitLSN)
	}
	if tx.EndLSN > c.handled {
		c.handled = tx.EndLSN
	}
	select {
	case c.flushReq <- struct{}{}:
	default:
	}
}

// appendTxn frames msgs and appends them to e's log (or buffers them while
// e's snapshot identity is unknown).
func (c *Cache) appendTxn(e *Entry, tx *volt.Transaction, msgs []shape.Message) error {
	entries := make([]shapelog.Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = shapelog.Entry{
			Offset: volt.Offset{LSN: tx.CommitLSN, Op: m.Op},
			JSON:   e.Shape.Frame(m, tx.CommitLSN, tx.Xid, i == len(msgs)-1),
		}
	}
	if e.snap == nil {
		e.pending = append(e.pending, bufferedTxn{lsn: tx.CommitLSN, xid: tx.Xid, entries: entries})
		return nil
	}
	if e.skip(tx.CommitLSN, tx.Xid) {
		return nil
	}
	if err := e.append(entries); err != nil {
		return fmt.Errorf("append to shape %s: %w", e.Handle, err)
	}
	c.dirty[e] = struct{}{}
	return nil
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
	c.mu.Unlock()
	for i, e := range dirty {
		if e.IsGone() {
			continue
		}
		if err := e.sync(); err != nil && !e.IsGone() {
			// Not durable: keep the slot where it is (the transactions will be
			// replayed after a restart) and keep these logs dirty, so no later
			// flush advances past them either.
			c.Logger.Error("sync shape log", "handle", e.Handle, "err", err)
			c.mu.Lock()
			for _, d := range dirty[i:] {
				c.dirty[d] = struct{}{}
			}
			c.mu.Unlock()
			return
		}
	}
	if target > c.durable.Load() {
		c.durable.Store(target)
	}
}

// restore loads the shapes of a previous run. Shapes whose snapshot never
// completed are discarded.
func (c *Cache) restore() error {
	handles, err := c.Store.List()
	if err != nil {
		return fmt.Errorf("list shapes: %w", err)
	}
	for _, h := range handles {
		e, err := c.restoreOne(h)
		if err != nil {
			c.Logger.Warn("discarding shape", "handle", h, "err", err)
			_ = c.Store.Delete(h)
			continue
		}
		c.register(e)
	}
	if len(handles) > 0 {
		c.Logger.Info("shapes restored", "count", len(c.byHandle))
	}
	return nil
}
