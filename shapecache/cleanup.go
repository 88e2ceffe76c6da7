package shapecache

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/voltsync/volt/shapelog"
)

// deleter removes the files of removed shapes in the background, so that
// removing shapes (expiry, a dropped table with many shapes) never does
// file-system work under the cache's lock.
type deleter struct {
	store  *shapelog.Store
	logger *slog.Logger

	mu    sync.Mutex
	queue []string
	wake  chan struct{}
}

func (d *deleter) init(store *shapelog.Store, logger *slog.Logger) {
	d.store, d.logger, d.wake = store, logger, make(chan struct{}, 1)
}

func (d *deleter) add(handle string) {
	d.mu.Lock()
	d.queue = append(d.queue, handle)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *deleter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		}
		d.drain()
	}
}

// drain deletes every queued shape's files.
func (d *deleter) drain() {
	for {
		d.mu.Lock()
		q := d.queue
		d.queue = nil
		d.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, h := range q {
			if err := d.store.Delete(h); err != nil {
				d.logger.Error("delete shape files", "handle", h, "err", err)
			}
		}
	}
}

// expiryLoop removes shapes no client has read for ShapeTTL.
func (c *Cache) expiryLoop() {
	c.every(min(max(c.ShapeTTL/4, 10*time.Millisecond), time.Minute), nil, func() {
		c.expire(time.Now().Add(-c.ShapeTTL))
	})
}

// every runs fn every interval (and whenever wake delivers) until the
// cache closes; it is the body of a background goroutine counted in c.wg.
func (c *Cache) every(interval time.Duration, wake <-chan struct{}, fn func()) {
	defer c.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		fn()
	}
}

// expire removes the shapes last read before cutoff whose snapshot is
// done (a shape still snapshotting has clients waiting for it).
func (c *Cache) expire(cutoff time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.byHandle {
		if e.lastUsed.Load() >= cutoff.UnixMilli() {
			continue
		}
		select {
		case <-e.ready:
		default:
			continue
		}
		c.removeLocked(e, "unused")
		n++
	}
	if n > 0 {
		c.Logger.Info("expired unused shapes", "count", n, "ttl", c.ShapeTTL)
	}
}
