package mutations

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/voltsync/volt"
)

// Metrics are the write endpoint's Prometheus metrics
// (docs/OPERATIONS.md). A nil *Metrics records nothing.
type Metrics struct {
	results *prometheus.CounterVec // status, code
}

// NewMetrics registers the write endpoint's metrics with reg; pass the
// result as Options.Metrics.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "volt_write_results_total",
		Help: "Client transactions answered by POST /v1/mutations, by result status (accepted, rejected, retry) and rejection code.",
	}, []string{"status", "code"})}
	if err := reg.Register(m.results); err != nil {
		return nil, fmt.Errorf("register write metrics: %w", err)
	}
	return m, nil
}

// count records the results of one request.
func (m *Metrics) count(results []volt.MutationResult) {
	if m == nil {
		return
	}
	for _, r := range results {
		m.results.WithLabelValues(boundedLabel(r.Status, volt.StatusAccepted, volt.StatusRejected, volt.StatusRetry),
			boundedLabel(r.Code, "", volt.CodeInvalid, volt.CodeForbidden, volt.CodeConflict, volt.CodeConstraint, volt.CodeDependent, volt.CodeOutOfOrder)).Inc()
	}
}

// boundedLabel returns v when it is one of known, else "other".
func boundedLabel(v string, known ...string) string {
	for _, k := range known {
		if v == k {
			return v
		}
	}
	return "other"
}
