package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newRegistry returns the server's metrics registry, holding the Go
// runtime and process collectors; nil when metrics are off.
func newRegistry(cfg Config) *prometheus.Registry {
	if cfg.MetricsPort == 0 {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsServer serves reg at /metrics on its own listener.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// listenMetrics opens the metrics listener on host:port and serves reg
// until close.
func listenMetrics(reg *prometheus.Registry, host string, port int, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	m := &metricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving Prometheus metrics", "url", fmt.Sprintf("http://localhost:%d/metrics", ln.Addr().(*net.TCPAddr).Port))
	return m, nil
}

func (m *metricsServer) close(ctx context.Context) {
	if m != nil {
		_ = m.srv.Shutdown(ctx)
	}
}
