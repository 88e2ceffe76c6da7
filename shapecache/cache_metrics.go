package shapecache

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cache's Prometheus metrics (docs/OPERATIONS.md). A nil
// *Metrics records nothing.
type Metrics struct {
	created     prometheus.Counter
	removed     *prometheus.CounterVec   // reason
	compactions *prometheus.CounterVec   // result
	snapshots   *prometheus.HistogramVec // result
}

// NewMetrics registers c's metrics with reg; set the result as c.Metrics
// before Open. The gauges (shapes, open logs, snapshots running and
// queued) read c's state at scrape time.
func NewMetrics(reg prometheus.Registerer, c *Cache) (*Metrics, error) {
	m := &Metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "volt_shapes_created_total",
			Help: "Shapes created (new definitions, and the successors of compacted shapes).",
		}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "volt_shapes_removed_total",
			Help: "Shapes removed, by reason.",
		}, []string{"reason"}),
		compactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "volt_compactions_total",
			Help: "Shape log compactions finished, by result (ok or failed).",
		}, []string{"result"}),
		snapshots: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "volt_snapshot_duration_seconds",
			Help:    "Time an initial snapshot took once it had a slot, by result (ok or failed).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"result"}),
	}
	gauge := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
	}
	for _, col := range []prometheus.Collector{
		m.created, m.removed, m.compactions, m.snapshots,
		gauge("volt_shapes", "Shapes in the cache (retired ones included until removed).", func() float64 { return float64(c.Len()) }),
		gauge("volt_open_logs", "Shape logs open.", func() float64 { return float64(c.logs.count()) }),
		gauge("volt_snapshots_running", "Initial snapshots running.", func() float64 { return float64(c.snapshotsRunning()) }),
		gauge("volt_snapshots_queued", "Initial snapshots waiting for a slot.", func() float64 {
			return float64(max(0, c.snapsLive.Load()-int64(c.snapshotsRunning())))
		}),
	} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register shape cache metrics: %w", err)
		}
	}
	return m, nil
}

// snapshotsRunning is the number of snapshot slots taken.
func (c *Cache) snapshotsRunning() int { return len(c.snapSlots) }

func (m *Metrics) shapeCreated() {
	if m != nil {
		m.created.Inc()
	}
}

func (m *Metrics) shapeRemoved(why string) {
	if m != nil {
		m.removed.WithLabelValues(removalReason(why)).Inc()
	}
}

func (m *Metrics) compacted(ok bool) {
	if m != nil {
		m.compactions.WithLabelValues(result(ok)).Inc()
	}
}

func (m *Metrics) snapshotTook(d time.Duration, ok bool) {
	if m != nil {
		m.snapshots.WithLabelValues(result(ok)).Observe(d.Seconds())
	}
}

func result(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

// removalReason maps the reason a shape was removed (as logged) to a
// bounded label value.
func removalReason(why string) string {
	switch {
	case why == "deleted":
		return "deleted"
	case why == "unused":
		return "expired"
	case why == "compacted":
		return "compacted"
	case why == "schema changed":
		return "schema_changed"
	case why == "truncate":
		return "truncated"
	case why == "snapshot failed":
		return "snapshot_failed"
	case why == "files missing", why == "log cannot be written":
		return "storage_error"
	case strings.HasPrefix(why, "where clause cannot be evaluated"):
		return "where_error"
	case strings.HasPrefix(why, "replication slot"):
		return "slot_lost"
	case why == whyTooManyValues:
		return "subquery_values_limit"
	}
	return "other"
}
