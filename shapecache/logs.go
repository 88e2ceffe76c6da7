package shapecache

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxOpenLogs bounds the shape logs open at once when
// Cache.MaxOpenLogs is zero. An open log holds two file descriptors (four
// while its snapshot is written or read).
const DefaultMaxOpenLogs = 4000

// A log is idle, and closed by the janitor even below the limit, once it
// has gone unused for logIdleTicks acquires (of any log) or for
// logIdleTime.
const (
	logIdleTicks = 100_000
	logIdleTime  = 5 * time.Second
)

// openLogs tracks the entries whose log is open, so the janitor can close
// the least recently used ones.
type openLogs struct {
	tick atomic.Int64 // advanced by every acquire

	mu   sync.Mutex
	set  map[*Entry]struct{}
	wake chan struct{}
	max  int
}

func (o *openLogs) init(max int) {
	if max <= 0 {
		max = DefaultMaxOpenLogs
	}
	o.set = map[*Entry]struct{}{}
	o.wake = make(chan struct{}, 1)
	o.max = max
}

func (o *openLogs) opened(e *Entry) {
	o.mu.Lock()
	o.set[e] = struct{}{}
	over := len(o.set) > o.max
	o.mu.Unlock()
	if over {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
}

// Count returns the number of open logs.
func (o *openLogs) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.set)
}

// janitorLoop closes idle logs: those not used for logIdleTicks acquires,
// and the least recently used ones beyond the limit.
func (c *Cache) janitorLoop() { c.every(time.Second, c.logs.wake, c.closeIdleLogs) }

func (c *Cache) closeIdleLogs() {
	o := &c.logs
	o.mu.Lock()
	type cand struct {
		e      *Entry
		used   int64
		usedAt int64
	}
	cands := make([]cand, 0, len(o.set))
	for e := range o.set {
		e.lmu.Lock()
		cands = append(cands, cand{e, e.used, e.usedAt})
		e.lmu.Unlock()
	}
	o.mu.Unlock()
	sort.Slice(cands, func(i, j int) bool { return cands[i].used < cands[j].used })
	now, nowMs := o.tick.Load(), time.Now().UnixMilli()
	// Past the limit, close down to 90% of it, so that the next few opens
	// do not each wake the janitor for one log.
	excess := 0
	if len(cands) > o.max {
		excess = len(cands) - o.max*9/10
	}
	for i, cd := range cands {
		// The first excess entries are closed whatever their age (if
		// not in use); the rest only once they are idle.
		before, beforeMs := now-logIdleTicks, nowMs-logIdleTime.Milliseconds()
		if i < excess {
			before, beforeMs = cd.used, cd.usedAt
		}
		if cd.used > before && cd.usedAt > beforeMs {
			continue
		}
		closed, err := cd.e.closeIfIdle(before, beforeMs)
		if err != nil {
			c.Logger.Error("sync shape log before closing", "handle", cd.e.Handle, "err", err)
			continue
		}
		if closed {
			o.mu.Lock()
			delete(o.set, cd.e)
			o.mu.Unlock()
		}
	}
}

// forgetLog drops a removed entry from the open set.
func (o *openLogs) forget(e *Entry) {
	o.mu.Lock()
	delete(o.set, e)
	o.mu.Unlock()
}
