package shapecache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

// keepupCache builds a cache of n shapes "owner_id = k" on items, each
// with a complete snapshot and a log on disk (closed, as after a restart
// or once the janitor closed it), without Postgres.
func keepupCache(tb testing.TB, n, maxOpen int) *Cache {
	tb.Helper()
	store, err := shapelog.OpenStore(tb.TempDir(), shapelog.Options{DeferSnapshotSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cache{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Compaction: Compaction{MinOps: -1}, MaxOpenLogs: maxOpen}
	if err := c.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	for k := 0; k < n; k++ {
		s, err := c.shapes.New(shape.Definition{Schema: "public", Table: "items", Where: "owner_id = " + strconv.Itoa(k)}, benchTable)
		if err != nil {
			tb.Fatal(err)
		}
		e := newEntry(c, c.shapes.NewHandle(s), s)
		e.snap = &postgres.SnapshotInfo{Snapshot: volt.Snapshot{Xmin: 1, Xmax: 1}, LSN: 1}
		close(e.ready)
		l, err := store.Create(e.Handle)
		if err != nil {
			tb.Fatal(err)
		}
		if err := l.FinishSnapshot([]byte(`{"headers":{"control":"snapshot-end"}}`)); err != nil {
			tb.Fatal(err)
		}
		if err := l.Close(); err != nil {
			tb.Fatal(err)
		}
		c.mu.Lock()
		c.register(e)
		c.mu.Unlock()
	}
	return c
}

// keepupTx is the i-th one-row INSERT of S8: row i for owner
// (i × a prime) mod n, so consecutive commits go to different shapes.
func keepupTx(i, n int) *volt.Transaction {
	id := strconv.Itoa(i + 1)
	owner := strconv.Itoa(int(uint64(i) * 7919 % uint64(n)))
	return &volt.Transaction{Xid: uint32(100 + i), CommitLSN: uint64(1000 + 2*i), EndLSN: uint64(1001 + 2*i),
		Changes: []volt.Change{{Kind: volt.ChangeInsert, Relation: benchRelation,
			New: []volt.Value{{Text: id}, {Text: owner}, {Text: "t" + id}}}}}
}

// keepupWait waits until the cache has handled the transaction ending at
// end (its jobs done, on the pool).
func keepupWait(tb testing.TB, c *Cache, commitLSN uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for c.LastProcessedLSN() < commitLSN {
		select {
		case <-ctx.Done():
			tb.Fatalf("transaction %d not handled", commitLSN)
		case <-time.After(time.Millisecond):
		}
	}
}

// BenchmarkKeepUp is S8 in process: one-row INSERTs, each matching one
// of n shapes "owner_id = k", fed through HandleTransaction the way
// replication does, with the flush loop syncing the logs meanwhile.
// Compare ns/op of shapes=1000 and shapes=10000.
func BenchmarkKeepUp(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("shapes=%d", n), func(b *testing.B) {
			c := keepupCache(b, n, 0)
			// Warm up: every shape once (the janitor's limits apply).
			for i := 0; i < n; i++ {
				if err := c.HandleTransaction(context.Background(), keepupTx(i, n)); err != nil {
					b.Fatal(err)
				}
			}
			keepupWait(b, c, keepupTx(n-1, n).CommitLSN)
			txs := make([]*volt.Transaction, b.N)
			for i := range txs {
				txs[i] = keepupTx(n+i, n)
			}
			b.ReportAllocs()
			if p := os.Getenv("VOLT_KEEPUP_CPUPROFILE"); p != "" {
				// The timed part alone (-cpuprofile also holds the setup,
				// which creates and first opens every log).
				f, err := os.Create(fmt.Sprintf("%s.%d", p, n))
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			b.ResetTimer()
			for _, tx := range txs {
				if err := c.HandleTransaction(context.Background(), tx); err != nil {
					b.Fatal(err)
				}
			}
			keepupWait(b, c, txs[len(txs)-1].CommitLSN)
		})
	}
}

// TestKeepUpReopensClosedLogsCheaply: with more shapes changing than
// open logs, the janitor closes logs that the next change reopens; those
// are reopened from the state the cache kept (only the live files are
// opened), not by a full Open. The format file that Open reads first is
// hidden for the second round, so a full Open would fail (and the shape
// would be dropped as broken).
func TestKeepUpReopensClosedLogsCheaply(t *testing.T) {
	const n = 20
	c := keepupCache(t, n, 5)
	feed := func(round int) {
		t.Helper()
		var last uint64
		for k := 0; k < n; k++ {
			tx := keepupTx(round*n+k, n)
			tx.Changes[0].New[1].Text = strconv.Itoa(k)
			if err := c.HandleTransaction(context.Background(), tx); err != nil {
				t.Fatal(err)
			}
			last = tx.CommitLSN
		}
		keepupWait(t, c, last)
	}
	feed(0)
	c.flush()
	c.closeIdleLogs()
	if open := c.logs.count(); open > 5 {
		t.Fatalf("%d logs open after the janitor, want ≤ 5", open)
	}
	c.mu.Lock()
	var closed []*Entry
	for _, e := range c.byHandle {
		e.lmu.Lock()
		if e.log == nil {
			if e.closed == nil {
				t.Errorf("shape %s: log closed without its state kept", e.Handle)
			}
			closed = append(closed, e)
		}
		e.lmu.Unlock()
	}
	c.mu.Unlock()
	if len(closed) < n-5 {
		t.Fatalf("%d logs closed, want ≥ %d", len(closed), n-5)
	}
	for _, e := range closed {
		f := filepath.Join(c.Store.Dir(), e.Handle, "snapshot.idx") // Open needs it
		if err := os.Rename(f, f+".hidden"); err != nil {
			t.Fatal(err)
		}
	}
	feed(1)
	c.flush()
	if c.Len() != n {
		t.Fatalf("%d shapes left of %d: closed logs were opened by a full Open", c.Len(), n)
	}
	for _, e := range closed {
		res, err := e.Read(volt.SnapshotEnd)
		if err != nil {
			t.Fatalf("shape %s: %v", e.Handle, err)
		}
		if len(res.Entries) != 2 {
			t.Fatalf("shape %s: %d live entries, want 2 (one per round)", e.Handle, len(res.Entries))
		}
	}
}
