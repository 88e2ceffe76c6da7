package shapecache

import (
	"time"
)

// Compaction configures how shape logs are kept short.
//
// A shape's log grows with every change, so a new client would download
// the whole history. When the messages a new client downloads exceed
// Ratio × the shape's current rows (and MinOps), the cache compacts the
// shape: it takes a fresh snapshot into a new log under a new handle,
// switches new clients to it once it is complete, and keeps serving the
// old log to the clients already on it for Grace. After that the old log
// is removed; its remaining clients get 409 must-refetch pointing at the
// new handle and download only the current rows.
//
// The new log is built from Postgres, not from the old log: it is the same
// consistent snapshot machinery every shape uses, so compaction cannot
// lose or double a change.
type Compaction struct {
	// MinOps is the least number of messages a log must hold before it is
	// compacted (default 4096; negative disables compaction).
	MinOps int64
	// Ratio is the messages-to-rows ratio above which a log is compacted
	// (default 2).
	Ratio float64
	// Grace is how long a replaced log keeps serving its clients (default
	// one minute).
	Grace time.Duration
	// Retry is how long to wait before compacting a shape again after a
	// failed attempt (default one minute).
	Retry time.Duration
}

// Compaction defaults.
const (
	DefaultCompactMinOps = 4096
	DefaultCompactGrace  = time.Minute
)

func (c *Compaction) defaults() {
	if c.MinOps == 0 {
		c.MinOps = DefaultCompactMinOps
	}
	if c.Ratio <= 0 {
		c.Ratio = 2
	}
	if c.Grace <= 0 {
		c.Grace = DefaultCompactGrace
	}
	if c.Retry <= 0 {
		c.Retry = time.Minute
	}
}

// maybeCompactLocked starts compacting e when its log has grown past the
// thresholds (c.mu held).
func (c *Cache) maybeCompactLocked(e *Entry) {
	cfg := c.Compaction
	if cfg.MinOps < 0 || e.compacting || e.retired || e.ops < cfg.MinOps || e.sq != nil {
		return
	}
	if float64(e.ops) <= cfg.Ratio*float64(max(e.rows, 1)) {
		return
	}
	if time.Now().UnixMilli() < e.compactAfter {
		return
	}
	select {
	case <-e.ready:
	default:
		return // still snapshotting
	}
	if c.ctx.Err() != nil {
		return
	}
	e.compacting = true
	c.wg.Add(1)
	go c.compact(e)
}

// compact replaces old with a freshly snapshotted shape of the same
// definition.
func (c *Cache) compact(old *Entry) {
	defer c.wg.Done()
	fail := func(err error) {
		c.Metrics.compacted(false)
		c.Logger.Error("compact shape", "handle", old.Handle, "err", err)
		c.mu.Lock()
		old.compacting = false
		old.compactAfter = time.Now().Add(c.Compaction.Retry).UnixMilli()
		c.mu.Unlock()
	}
	ne, err := c.create(c.ctx, old.Shape)
	if err != nil {
		fail(err)
		return
	}
	c.mu.Lock()
	if old.IsGone() {
		c.mu.Unlock()
		c.deleter.add(ne.Handle)
		return
	}
	c.byHandle[ne.Handle] = ne
	c.route(ne)
	c.mu.Unlock()
	c.startSnapshot(ne)
	select {
	case <-ne.ready:
	case <-c.ctx.Done():
		return
	}
	if err := ne.Err(); err != nil {
		fail(err)
		return
	}
	c.mu.Lock()
	if ne.IsGone() {
		c.mu.Unlock()
		fail(ErrShapeGone)
		return
	}
	if cur := c.byKey[old.Shape.Key]; cur == old || cur == nil {
		c.byKey[old.Shape.Key] = ne
	}
	old.retired = true
	ops, rows := old.ops, old.rows
	c.mu.Unlock()
	c.Metrics.compacted(true)
	c.Logger.Info("shape compacted", "handle", old.Handle, "successor", ne.Handle, "messages", ops, "rows", rows)
	c.retire(old)
}

// retire removes a replaced shape after the grace period.
func (c *Cache) retire(old *Entry) {
	time.AfterFunc(c.Compaction.Grace, func() {
		if c.ctx.Err() != nil {
			return // closing: the next start retires it again
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.removeLocked(old, "compacted")
	})
}
