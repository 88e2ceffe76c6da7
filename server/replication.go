package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/voltsync/volt/internal/backoff"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shapecache"
)

// runReplication streams into the cache until ctx ends. A slot that
// disappears (dropped by an operator, or lost with the database) is created
// again, and the shapes it fed are purged so their clients re-sync.
func runReplication(ctx context.Context, r *postgres.Reader, cache *shapecache.Cache, log *slog.Logger) error {
	for {
		err := r.Run(ctx, cache)
		if !errors.Is(err, postgres.ErrSlotMissing) || ctx.Err() != nil {
			return err
		}
		log.Warn("replication slot is gone; creating it again and discarding every shape")
		cache.Purge("replication slot was lost")
		if err := setupReplication(ctx, r, cache, log); err != nil {
			return err
		}
	}
}

// setupReplication creates (or finds) the publication and slot, retrying
// while Postgres is unreachable. A new slot cannot continue old shape logs,
// so they are purged.
func setupReplication(ctx context.Context, r *postgres.Reader, cache *shapecache.Cache, log *slog.Logger) error {
	bo := backoff.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: backoff.Equal}
	for {
		created, err := r.Setup(ctx)
		if err == nil {
			if created && cache.Len() > 0 {
				cache.Purge("replication slot was created anew")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !postgres.IsRetryable(err) {
			return fmt.Errorf("replication setup: %w", err)
		}
		delay := bo.Next()
		log.Warn("replication setup failed; retrying", "err", err, "in", delay)
		if err := backoff.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}
