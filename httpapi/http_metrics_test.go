package httpapi

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Each request is counted under its route pattern (never its path or
// handle) and logged at debug level without its query string.
func TestObserveCountsAndLogsRequests(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, s)
	if err != nil {
		t.Fatal(err)
	}
	s.Metrics = m
	h := s.observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("12345"))
	}))
	for _, target := range []string{
		"/v1/shape?table=items&handle=h-123&offset=0_0&live=true&secret=sekrit",
		"/v1//shape?handle=h-123&secret=sekrit",
		"/v1/shape/h-123?secret=sekrit",
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.Metric {
			key := f.GetName()
			for _, l := range mt.Label {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case mt.Counter != nil:
				got[key] = mt.Counter.GetValue()
			case mt.Histogram != nil:
				got[key] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"volt_http_requests_total method=GET route=/v1/shape status=418": 2,
		"volt_http_requests_total method=GET route=other status=418":     1,
		"volt_http_request_duration_seconds live=true route=/v1/shape":   1,
		"volt_http_request_duration_seconds live=false route=/v1/shape":  1,
		"volt_http_request_duration_seconds live=false route=other":      1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
	for key := range got {
		if strings.Contains(key, "h-123") {
			t.Errorf("a label holds the handle: %s", key)
		}
	}
	log := logs.String()
	if strings.Contains(log, "sekrit") || strings.Contains(log, "secret") || strings.Count(log, `msg="http request"`) != 3 {
		t.Fatalf("want 3 request lines without the secret:\n%s", log)
	}
	if !strings.Contains(log, "method=GET path=/v1/shape handle=h-123 status=418 bytes=5 duration=") {
		t.Fatalf("request line lacks its fields:\n%s", log)
	}
}
