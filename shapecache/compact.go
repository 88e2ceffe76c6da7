package shapecache

import (
	"time"
)

// Compaction configures how shape logs are kept short.
//
// A shape's log grows with every change, so a new client would download
// the whole history. When the messages a new client downloads exceed
// Ratio × the shape's current rows, the cache compacts the shape: it
// takes a fresh snapshot into a new log under a new handle, switches new
// clients to it once it is complete, and keeps serving the old log to the
// clients already on it for Grace. After that the old log is removed; its
// remaining clients get 409 must-refetch pointing at the new handle and
// download only the current rows.
//
// When compaction starts bounds its cost. While changes arrive, a log is
// compacted as soon as it holds more than max(Ratio × rows, MinOps - 1)
// messages: a tiny shape is not re-snapshotted on every write but at most
// once per MinOps - Ratio × rows appended messages. A log over Ratio × rows
// but under MinOps is compacted once no change has reached it for Quiet,
// one such shape at a time across the cache (and at most one per Quiet/4),
// so that after a burst of writes a new client downloads at most Ratio ×
// the live rows, whatever the shape's size.
//
// The new log is built from Postgres, not from the old log: it is the same
// consistent snapshot machinery every shape uses, so compaction cannot
// lose or double a change.
type Compaction struct {
	// MinOps is the least number of messages a log must hold before it is
	// compacted while changes are arriving (default 32; negative disables
	// compaction). Below it, a log over Ratio × rows waits for Quiet.
	MinOps int64
	// Ratio is the messages-to-rows ratio above which a log is compacted
	// (default 2).
	Ratio float64
	// Quiet is how long a log over Ratio × rows but under MinOps must go
	// without a change before it is compacted (default 2 s).
	Quiet time.Duration
	// Grace is how long a replaced log keeps serving its clients (default
	// one minute).
	Grace time.Duration
	// Retry is how long to wait before compacting a shape again after a
	// failed attempt (default one minute).
	Retry time.Duration

	// quiet holds the shapes waiting for Quiet, by the unix ms of their
	// last change; quietBusy is set while one of them is being compacted.
	// Both guarded by Cache.mu; the map is made, and the loop that drains
	// it started, on first use.
	quiet     map[*Entry]int64
	quietBusy bool
}

// Compaction defaults.
const (
	DefaultCompactMinOps = 32
	DefaultCompactQuiet  = 2 * time.Second
	DefaultCompactGrace  = time.Minute
)

func (c *Compaction) defaults() {
	if c.MinOps == 0 {
		c.MinOps = DefaultCompactMinOps
	}
	if c.Ratio <= 0 {
		c.Ratio = 2
	}
	if c.Quiet <= 0 {
		c.Quiet = DefaultCompactQuiet
	}
	if c.Grace <= 0 {
		c.Grace = DefaultCompactGrace
	}
	if c.Retry <= 0 {
		c.Retry = time.Minute
	}
}

// maybeCompactLocked starts compacting e when its log has grown past the
// thresholds, or queues it for compaction once quiet (c.mu held).
func (c *Cache) maybeCompactLocked(e *Entry) {
	cfg := &c.Compaction
	if !c.compactableLocked(e) {
		return
	}
	if e.ops < cfg.MinOps {
		if c.ctx.Err() != nil {
			return
		}
		if cfg.quiet == nil {
			cfg.quiet = map[*Entry]int64{}
			c.wg.Add(1)
			go c.every(min(max(cfg.Quiet/4, 10*time.Millisecond), time.Second), nil, c.compactQuiet)
		}
		cfg.quiet[e] = time.Now().UnixMilli()
		return
	}
	c.startCompactLocked(e, false)
}

// compactableLocked says whether e's log is over Ratio × rows and e may
// be compacted now (c.mu held).
func (c *Cache) compactableLocked(e *Entry) bool {
	cfg := &c.Compaction
	if cfg.MinOps < 0 || e.compacting || e.retired || e.sq != nil || e.IsGone() {
		return false
	}
	if float64(e.ops) <= cfg.Ratio*float64(max(e.rows, 1)) {
		return false
	}
	if time.Now().UnixMilli() < e.compactAfter {
		return false
	}
	select {
	case <-e.ready:
		return true
	default:
		return false // still snapshotting
	}
}

// compactQuiet starts compacting the shape that has waited longest among
// those quiet for Compaction.Quiet, unless one is being compacted already.
func (c *Cache) compactQuiet() {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := &c.Compaction
	if cfg.quietBusy {
		return
	}
	due := time.Now().Add(-cfg.Quiet).UnixMilli()
	var next *Entry
	for e, at := range cfg.quiet {
		switch {
		case !c.compactableLocked(e):
			// Gone, being compacted, or back under the ratio; after a
			// failed attempt it comes back with its next change.
			delete(cfg.quiet, e)
		case at <= due && (next == nil || at < cfg.quiet[next]):
			next = e
		}
	}
	if next == nil || c.ctx.Err() != nil {
		return
	}
	delete(cfg.quiet, next)
	if c.compactableLocked(next) {
		cfg.quietBusy = true
		c.startCompactLocked(next, true)
	}
}

// startCompactLocked marks e as compacting and builds its successor in the
// background (c.mu held); quiet says it came from the quiet queue.
func (c *Cache) startCompactLocked(e *Entry, quiet bool) {
	if c.ctx.Err() != nil {
		if quiet {
			c.Compaction.quietBusy = false
		}
		return
	}
	e.compacting = true
	c.wg.Add(1)
	go c.compact(e, quiet)
}

// compact replaces old with a freshly snapshotted shape of the same
// definition; quiet says it came from the quiet queue, which may start
// the next one when it returns.
func (c *Cache) compact(old *Entry, quiet bool) {
	defer c.wg.Done()
	if quiet {
		defer func() {
			c.mu.Lock()
			c.Compaction.quietBusy = false
			c.mu.Unlock()
		}()
	}
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
	// The changes that reached the successor while it was snapshotting
	// may already put it over the thresholds: check now rather than at
	// its next change.
	c.maybeCompactLocked(ne)
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
