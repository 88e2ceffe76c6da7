package postgres

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/voltsync/volt/internal/pgtest"
)

// replMetric returns the value of the unlabelled counter or gauge name.
func replMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.Metric) == 1 {
			if c := f.Metric[0].Counter; c != nil {
				return c.GetValue()
			}
			return f.Metric[0].Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// The reader's metrics count transactions and changes, and report the lag
// behind Postgres and the position confirmed to the slot.
func TestReaderMetrics(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY)`)
	r := replSetup(t, url, "", "items")
	reg := prometheus.NewRegistry()
	if err := r.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	h := newReplTestHandler(false)
	replRun(t, r, h)
	replEventually(t, "volt_replication_connected = 1", func() bool { return replMetric(t, reg, "volt_replication_connected") == 1 })

	pgtest.Exec(t, url, `INSERT INTO items SELECT generate_series(1, 3)`)
	tx := h.next(t)
	replEventually(t, "the transaction counted", func() bool {
		return replMetric(t, reg, "volt_replication_transactions_total") >= 1 && replMetric(t, reg, "volt_replication_changes_total") >= 3
	})
	if lag := replMetric(t, reg, "volt_replication_lag_seconds"); lag <= 0 || lag > 60 {
		t.Fatalf("volt_replication_lag_seconds = %v, want a small positive delay", lag)
	}
	// Not durable yet: the slot is not confirmed past it.
	if lag := replMetric(t, reg, "volt_replication_lag_bytes"); lag <= 0 {
		t.Fatalf("volt_replication_lag_bytes = %v with a transaction not yet durable", lag)
	}
	if got := replMetric(t, reg, "volt_replication_confirmed_lsn"); got >= float64(tx.EndLSN) {
		t.Fatalf("volt_replication_confirmed_lsn = %v, past the undurable %d", got, tx.EndLSN)
	}
	if got := replMetric(t, reg, "volt_replication_received_lsn"); got < float64(tx.EndLSN) {
		t.Fatalf("volt_replication_received_lsn = %v, below the transaction's end %d", got, tx.EndLSN)
	}
	h.durable.Store(tx.EndLSN)
	replEventually(t, "the confirmed LSN to reach the transaction", func() bool {
		return replMetric(t, reg, "volt_replication_confirmed_lsn") >= float64(tx.EndLSN)
	})
}
