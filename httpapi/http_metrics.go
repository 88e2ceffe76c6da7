package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/voltsync/volt"
)

// Metrics are the HTTP server's Prometheus metrics (docs/OPERATIONS.md).
// A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec   // route, method, status
	duration *prometheus.HistogramVec // route, live
}

// NewMetrics registers s's metrics with reg; set the result as s.Metrics
// before Listen. Parked long-polls are read from s at scrape time.
func NewMetrics(reg prometheus.Registerer, s *Server) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "volt_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "volt_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response, by route pattern; live=true for live shape requests (long-polls and SSE, held until a change or their timeout).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "live"}),
	}
	parked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "volt_http_parked_live_requests",
		Help: "Live shape requests (long-polls) currently waiting for a change.",
	}, func() float64 { return float64(s.parked.Load()) })
	for _, c := range []prometheus.Collector{m.requests, m.duration, parked} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register HTTP metrics: %w", err)
		}
	}
	return m, nil
}

// routes are the route labels; any other path is "other", so that a label
// never holds a client's path or a shape handle.
var routes = map[string]bool{
	"/v1/shape": true, "/v1/mutations": true, "/v1/shape-token": true,
	"/v1/health": true, "/v1/stats": true, "/": true,
}

func routeLabel(r *http.Request) string {
	if p := normalisePath(r.URL); routes[p] {
		return p
	}
	return "other"
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodOptions, http.MethodPut, http.MethodPatch:
		return m
	}
	return "other"
}

// observe counts a request and its duration and logs it at debug level:
// method, path (without query string), shape handle, status, bytes and
// duration. The query string is never logged: it may carry the secret.
func (s *Server) observe(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Metrics == nil && !s.Logger.Enabled(r.Context(), slog.LevelDebug) {
			h.ServeHTTP(w, r)
			return
		}
		// The request is served in this small frame and recorded in
		// another: a parked long-poll waits below this frame, whose size
		// counts in its stack (serveShape).
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		s.record(r, rec, start)
	})
}

// record counts a served request and logs it at debug level.
func (s *Server) record(r *http.Request, rec *statusRecorder, start time.Time) {
	d := time.Since(start)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	if m := s.Metrics; m != nil {
		route := routeLabel(r)
		live := strconv.FormatBool(route == "/v1/shape" && boolish(r.URL.Query(), volt.ParamLive))
		m.requests.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(route, live).Observe(d.Seconds())
	}
	if s.Logger.Enabled(r.Context(), slog.LevelDebug) {
		s.Logger.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method), slog.String("path", normalisePath(r.URL)),
			slog.String("handle", r.URL.Query().Get(volt.ParamHandle)), slog.Int("status", status),
			slog.Int64("bytes", rec.bytes), slog.Duration("duration", d))
	}
}

// statusRecorder notes a response's status and size.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets SSE streams through.
func (w *statusRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
