package shapecache

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/voltsync/volt/internal/pgtest"
)

// metricsValue sums the samples of name whose labels include want (a
// histogram counts its observations); found is false without any.
func metricsValue(t *testing.T, reg *prometheus.Registry, name string, want ...string) (sum float64, found bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(want); i += 2 {
				if labels[want[i]] != want[i+1] {
					continue next
				}
			}
			found = true
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum, found
}

func metricsWait(t *testing.T, reg *prometheus.Registry, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _ := metricsValue(t, reg, name, labels...)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, v, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The cache's metrics follow shapes created, removed (by reason) and
// compacted, and the snapshots running and queued.
func TestCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	gate := make(chan struct{})
	h := startHarness(t, pgtest.NewDB(t), t.TempDir(), func(c *Cache) {
		var err error
		if c.Metrics, err = NewMetrics(reg, c); err != nil {
			t.Fatal(err)
		}
		c.SnapshotConcurrency = 1
		c.Snapshotter = &gatedSnapshotter{Snapshotter: c.Snapshotter, gate: gate}
		c.Compaction = Compaction{MinOps: 50, Grace: 100 * time.Millisecond}
	})
	h.exec(itemsDDL)
	h.insertOwners(3, 0)
	a, err := h.getShape("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.getShape("owner_id = 1")
	if err != nil {
		t.Fatal(err)
	}
	metricsWait(t, reg, 1, "volt_snapshots_running")
	metricsWait(t, reg, 1, "volt_snapshots_queued")
	metricsWait(t, reg, 2, "volt_shapes")
	metricsWait(t, reg, 2, "volt_shapes_created_total")
	close(gate)
	<-a.Ready()
	<-b.Ready()
	metricsWait(t, reg, 0, "volt_snapshots_running")
	metricsWait(t, reg, 0, "volt_snapshots_queued")
	metricsWait(t, reg, 2, "volt_snapshot_duration_seconds", "result", "ok")
	if v, ok := metricsValue(t, reg, "volt_open_logs"); !ok || v < 1 {
		t.Fatalf("volt_open_logs = %v (%v), want at least 1", v, ok)
	}

	if !h.cache.Delete(b.Handle) {
		t.Fatal("delete failed")
	}
	metricsWait(t, reg, 1, "volt_shapes_removed_total", "reason", "deleted")
	metricsWait(t, reg, 1, "volt_shapes")

	var updates strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&updates, "UPDATE items SET title = 'v%d' WHERE id = 1;", i)
	}
	h.exec(updates.String())
	waitGone(t, a, "long log was not compacted and retired")
	metricsWait(t, reg, 1, "volt_compactions_total", "result", "ok")
	metricsWait(t, reg, 1, "volt_shapes_removed_total", "reason", "compacted")
	metricsWait(t, reg, 3, "volt_shapes_created_total")
	metricsWait(t, reg, 1, "volt_shapes")
}

// syncBuffer is a log destination safe to read while the cache writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A snapshot slower than Cache.slowSnapshot is logged at info level with its
// rows, bytes, time, handle and table; a fast one only at debug level.
func TestSlowSnapshotIsLogged(t *testing.T) {
	var logs syncBuffer
	h := startHarness(t, pgtest.NewDB(t), t.TempDir(), func(c *Cache) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	h.exec(itemsDDL)
	h.insertOwners(3, 0)
	h.newShape("owner_id = 0")
	if strings.Contains(logs.String(), "snapshot complete") {
		t.Fatalf("a fast snapshot was logged at info level:\n%s", logs.String())
	}
	h.cache.slowSnapshot = 0 // before the next snapshot starts
	slow := h.newShape("")
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "snapshot complete") {
			line = l
		}
	}
	for _, want := range []string{"level=INFO", "handle=" + slow.Handle, "table=public.items", "rows=3", "bytes=", "duration="} {
		if !strings.Contains(line, want) {
			t.Fatalf("snapshot line %q lacks %q; log:\n%s", line, want, logs.String())
		}
	}
}
