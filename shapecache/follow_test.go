package shapecache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/voltsync/volt/shapelog"
)

func openBareCache(t *testing.T) *Cache {
	t.Helper()
	store, err := shapelog.OpenStore(t.TempDir(), shapelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCloseJoinsTheFeed: Close cancels the feed and returns only after it
// has returned, so a transaction the feed is still delivering never meets
// closed logs (volt serve used to close the cache while replication ran).
func TestCloseJoinsTheFeed(t *testing.T) {
	c := openBareCache(t)
	cancelled, release := make(chan struct{}), make(chan struct{})
	stopped := c.Follow(func(ctx context.Context) error {
		<-ctx.Done()
		close(cancelled)
		<-release
		return ctx.Err()
	})
	closed := make(chan struct{})
	go func() { _ = c.Close(); close(closed) }()
	<-cancelled
	select {
	case <-closed:
		t.Fatal("Close returned while the feed was still running")
	default:
	}
	close(release)
	<-closed
	if err, ok := <-stopped; ok {
		t.Fatalf("a feed stopped by Close reported %v as if it had stopped on its own", err)
	}
}

// TestFollowReportsAFeedThatStops: a feed that returns on its own (a
// replication error) is reported, and Close still works.
func TestFollowReportsAFeedThatStops(t *testing.T) {
	c := openBareCache(t)
	boom := errors.New("boom")
	if err := <-c.Follow(func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
