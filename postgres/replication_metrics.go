package postgres

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/voltsync/volt"
)

// readerMetrics are a Reader's Prometheus metrics (docs/OPERATIONS.md);
// nil records nothing.
type readerMetrics struct {
	transactions prometheus.Counter
	changes      prometheus.Counter
	// delay is the last transaction's commit-to-processed time, as
	// float64 bits.
	delay atomic.Uint64
}

// RegisterMetrics registers r's metrics with reg. Call it before Run. The
// positions and lag gauges read r's state at scrape time.
func (r *Reader) RegisterMetrics(reg prometheus.Registerer) error {
	m := &readerMetrics{
		transactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "volt_replication_transactions_total",
			Help: "Transactions received from the replication stream and processed (empty ones included).",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "volt_replication_changes_total",
			Help: "Row changes (inserts, updates, deletes, truncates) in the transactions processed.",
		}),
	}
	gauge := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
	}
	for _, c := range []prometheus.Collector{
		m.transactions, m.changes,
		gauge("volt_replication_lag_bytes", "WAL bytes received from Postgres (up to its WAL end) and not yet confirmed to the slot.", func() float64 {
			rec, ack := r.received.Load(), r.acked.Load()
			if rec <= ack {
				return 0
			}
			return float64(rec - ack)
		}),
		gauge("volt_replication_lag_seconds", "For the last transaction processed: time from its commit in Postgres to the end of its processing by volt.", func() float64 {
			return math.Float64frombits(m.delay.Load())
		}),
		gauge("volt_replication_confirmed_lsn", "The flush position (LSN as a number) last confirmed to the replication slot.", func() float64 { return float64(r.acked.Load()) }),
		gauge("volt_replication_received_lsn", "The highest WAL position (LSN as a number) received from Postgres.", func() float64 { return float64(r.received.Load()) }),
		gauge("volt_replication_connected", "1 while the replication stream is connected, else 0.", func() float64 {
			if r.connected.Load() {
				return 1
			}
			return 0
		}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register replication metrics: %w", err)
		}
	}
	r.metrics = m
	return nil
}

// processed counts a transaction the handler accepted.
func (m *readerMetrics) processed(tx *volt.Transaction) {
	if m == nil {
		return
	}
	m.transactions.Inc()
	m.changes.Add(float64(len(tx.Changes)))
	if !tx.CommitTime.IsZero() {
		m.delay.Store(math.Float64bits(max(0, time.Since(tx.CommitTime).Seconds())))
	}
}
