package shapecache

import (
	"time"
)

// Compaction configures how shape logs are kept short.
//
// A shape's log grows with every change, so a new client would download
// the whole history. When the messages a new client downloads exceed
// Ratio × the shape's current rows, the cache compacts the shape: it
// takes a fresh snapshot into a new log under a new handle and switches new
// clients to it once it is complete. The old log is retired: it keeps
// receiving the shape's changes and serving the clients already on it for
// as long as they read it (long-polls, SSE, catch-up requests), so a live
// client, which holds the state already, never re-downloads the shape
// because of compaction. A retired log no client has read for Grace is
// removed; a client that comes back to it later gets 409 must-refetch
// pointing at the new handle and downloads only the current rows. Clients
// parked in a long-poll or an SSE stream count as readers: before removing
// a log idle for Grace, the cache wakes them and keeps the log if they
// read it again. At most two retired generations of a shape are kept: a
// compaction that would make a third removes the oldest retired log at
// once (its clients get the 409).
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
	// Grace is how long a replaced log keeps serving its clients after
	// their last read (default one minute).
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
	// retired holds each shape's retired logs still serving, oldest first,
	// by shape key (at most maxRetired each); guarded by Cache.mu.
	retired map[string][]*Entry
}

// maxRetired is how many retired generations of a shape readers may keep.
const maxRetired = 2

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

// retire keeps a replaced shape serving its clients until none has read
// it for Grace, and removes the oldest retired generation of the shape at
// once when there are more than maxRetired.
func (c *Cache) retire(old *Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old.IsGone() {
		return
	}
	cfg := &c.Compaction
	if cfg.retired == nil {
		cfg.retired = map[string][]*Entry{}
	}
	key := old.Shape.Key
	gens := append(liveEntries(cfg.retired[key]), old)
	for len(gens) > maxRetired {
		c.removeLocked(gens[0], "compacted")
		gens = gens[1:]
	}
	cfg.retired[key] = gens
	c.checkRetiredAfter(old, cfg.Grace, 0)
}

// checkRetiredAfter runs checkRetired for old after d.
func (c *Cache) checkRetiredAfter(old *Entry, d time.Duration, probed int64) {
	time.AfterFunc(d, func() { c.checkRetired(old, probed) })
}

// checkRetired removes the retired shape old if no client has read it for
// Grace, or checks again when that may be the case. Clients parked waiting
// for a change have not read it lately, yet are still there: they are
// woken (they read again at once) and old is checked again shortly after;
// probed is the unix ms of that wake-up, 0 if none, and old is removed
// when no client read it since.
func (c *Cache) checkRetired(old *Entry, probed int64) {
	if c.ctx.Err() != nil {
		return // closing: the next start retires it again
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.forgetRetiredLocked(old.Shape.Key)
	if old.IsGone() {
		return
	}
	last := old.lastUsed.Load()
	if probed == 0 || last >= probed {
		grace := c.Compaction.Grace
		if idle := time.Since(time.UnixMilli(last)); idle < grace {
			c.checkRetiredAfter(old, grace-idle, 0)
			return
		}
		if old.waited() {
			now := time.Now()
			old.notify()
			// Woken readers read again within milliseconds; the wait is
			// generous for a loaded machine (a miss costs them a 409).
			c.checkRetiredAfter(old, min(max(grace, time.Second), 5*time.Second), now.UnixMilli())
			return
		}
	}
	c.removeLocked(old, "compacted")
}

// forgetRetiredLocked drops the removed entries from the retired
// generations of the shape with key (c.mu held).
func (c *Cache) forgetRetiredLocked(key string) {
	cfg := &c.Compaction
	if gens := liveEntries(cfg.retired[key]); len(gens) > 0 {
		cfg.retired[key] = gens
	} else {
		delete(cfg.retired, key)
	}
}

// liveEntries returns es without the removed entries, in place.
func liveEntries(es []*Entry) []*Entry {
	out := es[:0]
	for _, e := range es {
		if !e.IsGone() {
			out = append(out, e)
		}
	}
	return out
}
