package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/voltsync/volt/internal/pgtest"
)

// metricsScrape is one parsed GET /metrics.
type metricsScrape map[string]*dto.MetricFamily

// metricsGet scrapes port's /metrics and parses the text format.
func metricsGet(t *testing.T, port int) metricsScrape {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of name's series whose labels include want
// (counter, gauge, or a histogram's count), and whether there is one.
func (s metricsScrape) value(name string, want ...string) (float64, bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
	sum, found := 0.0, false
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				ok = false
			}
		}
		if !ok {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, found
}

// metricsNeed fails unless name{want} is present with a value of at least min.
func metricsNeed(t *testing.T, s metricsScrape, min float64, name string, want ...string) float64 {
	t.Helper()
	v, ok := s.value(name, want...)
	if !ok {
		t.Fatalf("no series %s%v in /metrics", name, want)
	}
	if v < min {
		t.Fatalf("%s%v = %v, want at least %v", name, want, v, min)
	}
	return v
}

// metricsUntil scrapes until cond holds (counters updated in the
// background, such as replication's) or fails after 30 s.
func metricsUntil(t *testing.T, port int, what string, cond func(metricsScrape) bool) metricsScrape {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := metricsGet(t, port)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s in /metrics", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// volt serve -metrics-port serves Prometheus metrics that count what
// clients did; route labels never hold a handle; each request is logged at
// debug level without its query string's secret.
func TestMetricsEndpoint(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`)
	pgtest.Exec(t, db, `INSERT INTO items VALUES (1, 'a')`)
	port := freePort(t)
	const secret = "metrics-test-secret-value"
	v := startVolt(t, db, "VOLT_METRICS_PORT="+strconv.Itoa(port), "VOLT_SECRET="+secret, "VOLT_INSECURE_WRITES=true")

	before := metricsGet(t, port)
	if _, ok := before.value("go_goroutines"); !ok {
		t.Fatal("no Go runtime metrics (go_goroutines)")
	}
	if _, ok := before.value("process_resident_memory_bytes"); !ok {
		t.Fatal("no process metrics (process_resident_memory_bytes)")
	}
	shape200, _ := before.value("volt_http_requests_total", "route", "/v1/shape", "status", "200")
	created, _ := before.value("volt_shapes_created_total")
	txs, _ := before.value("volt_replication_transactions_total")
	accepted, _ := before.value("volt_write_results_total", "status", "accepted")
	invalid, _ := before.value("volt_write_results_total", "status", "rejected", "code", "invalid")
	changes, _ := before.value("volt_replication_changes_total")

	f := newFollower(v, "table", "items", "secret", secret)
	f.catchUp(t)
	pgtest.Exec(t, db, `INSERT INTO items VALUES (2, 'b')`)
	f.pollUntil(t, "row 2", func(rows map[string]map[string]*string) bool { return len(rows) == 2 })
	// A write through POST /v1/mutations: one transaction accepted, one
	// rejected (no such table).
	status, _, body := postJSON(t, v.URL+"/v1/mutations?secret="+secret,
		`{"client_id":"metrics-1","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"items","values":{"id":3,"title":"c"}}]}]}`)
	if status != 200 || !strings.Contains(string(body), `"accepted"`) {
		t.Fatalf("write: %d %s", status, body)
	}
	status, _, body = postJSON(t, v.URL+"/v1/mutations?secret="+secret,
		`{"client_id":"metrics-2","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"no_such_table","values":{"id":1}}]}]}`)
	if status != 200 || !strings.Contains(string(body), `"invalid"`) {
		t.Fatalf("invalid write: %d %s", status, body)
	}
	f.pollUntil(t, "row 3", func(rows map[string]map[string]*string) bool { return len(rows) == 3 })
	if r := get(t, v.URL+"/v1/shape/"+f.handle+"?secret="+secret); r.Status != 404 {
		t.Fatalf("GET /v1/shape/<handle>: %d", r.Status)
	}

	after := metricsGet(t, port)
	// The follower made at least 2 requests answered 200 (snapshot, then
	// the live one carrying row 2).
	metricsNeed(t, after, shape200+2, "volt_http_requests_total", "route", "/v1/shape", "status", "200")
	metricsNeed(t, after, 2, "volt_http_request_duration_seconds", "route", "/v1/shape")
	metricsNeed(t, after, 1, "volt_http_requests_total", "route", "other", "status", "404")
	metricsNeed(t, after, accepted+1, "volt_write_results_total", "status", "accepted", "code", "")
	metricsNeed(t, after, invalid+1, "volt_write_results_total", "status", "rejected", "code", "invalid")
	metricsNeed(t, after, 2, "volt_http_requests_total", "route", "/v1/mutations", "method", "POST", "status", "200")
	metricsNeed(t, after, created+1, "volt_shapes_created_total")
	metricsNeed(t, after, 1, "volt_shapes")
	metricsNeed(t, after, 1, "volt_snapshot_duration_seconds", "result", "ok")
	for _, name := range []string{"volt_open_logs", "volt_snapshots_running", "volt_snapshots_queued"} {
		metricsNeed(t, after, 0, name)
	}
	// Replication's counters move in the background: the inserts (by SQL
	// and by the write) reached the follower, but their counting may trail
	// by a moment.
	after = metricsUntil(t, port, "the insert counted", func(s metricsScrape) bool {
		n, _ := s.value("volt_replication_transactions_total")
		c, _ := s.value("volt_replication_changes_total")
		return n >= txs+2 && c >= changes+2
	})
	metricsNeed(t, after, 1, "volt_replication_connected")
	metricsNeed(t, after, 1, "volt_replication_confirmed_lsn")
	metricsNeed(t, after, 1, "volt_replication_received_lsn")
	for _, name := range []string{"volt_replication_lag_bytes", "volt_replication_lag_seconds"} {
		if lag := metricsNeed(t, after, 0, name); lag > 1<<30 {
			t.Fatalf("%s = %v: implausible", name, lag)
		}
	}
	if _, ok := after.value("volt_http_parked_live_requests"); !ok {
		t.Fatal("no volt_http_parked_live_requests")
	}
	for name, fam := range after {
		for _, m := range fam.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), f.handle) || strings.Contains(l.GetValue(), secret) {
					t.Errorf("%s has label %s=%q: a handle or secret in a label", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// The debug request log: one line per request, with the handle and
	// status, never the secret.
	log := v.Log()
	if strings.Contains(log, secret) {
		t.Fatalf("the secret appears in the log:\n%s", log)
	}
	var line string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=\"http request\"") && strings.Contains(l, "handle="+f.handle) && strings.Contains(l, "status=200") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "path=/v1/shape") || !strings.Contains(line, "method=GET") ||
		!strings.Contains(line, "bytes=") || !strings.Contains(line, "duration=") || strings.Contains(line, "secret") {
		t.Fatalf("no debug request line for the shape's requests (or one with its query string):\n%s", log)
	}
}

// Without -metrics-port volt serves no metrics, on no port.
func TestMetricsOffByDefault(t *testing.T) {
	v := startVolt(t, pgtest.NewDB(t))
	if strings.Contains(v.Log(), "Prometheus") {
		t.Fatalf("metrics served without -metrics-port:\n%s", v.Log())
	}
	if r := get(t, v.URL+"/metrics"); r.Status != 404 {
		t.Fatalf("GET /metrics on the API port: %d, want 404", r.Status)
	}
}
