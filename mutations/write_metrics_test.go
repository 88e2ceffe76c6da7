package mutations

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/voltsync/volt"
)

// Results are counted by status and code; a code outside the known set is
// counted as "other", so labels stay bounded; nil Metrics is a no-op.
func TestWriteMetricsCount(t *testing.T) {
	var none *Metrics
	none.count([]volt.MutationResult{{Status: volt.StatusAccepted}})

	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.count([]volt.MutationResult{
		{Status: volt.StatusAccepted}, {Status: volt.StatusAccepted},
		{Status: volt.StatusRejected, Code: volt.CodeConstraint},
		{Status: volt.StatusRejected, Code: "made-up " + "code"},
		{Status: volt.StatusRetry},
	})
	fams, err := reg.Gather()
	if err != nil || len(fams) != 1 || len(fams[0].Metric) != 4 {
		t.Fatalf("gathered %v (%v), want 4 series of volt_write_results_total", fams, err)
	}
	for _, c := range []struct {
		status, code string
		want         float64
	}{
		{"accepted", "", 2}, {"rejected", "constraint", 1}, {"rejected", "other", 1}, {"retry", "", 1}, {"rejected", "invalid", 0},
	} {
		var d dto.Metric
		if err := m.results.WithLabelValues(c.status, c.code).Write(&d); err != nil {
			t.Fatal(err)
		}
		if got := d.Counter.GetValue(); got != c.want {
			t.Errorf("volt_write_results_total{status=%q,code=%q} = %v, want %v", c.status, c.code, got, c.want)
		}
	}
}
