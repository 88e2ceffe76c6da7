package main

import (
	"strings"
	"testing"
)

// -metrics-port is off by default, read from VOLT_METRICS_PORT or
// Electric's ELECTRIC_PROMETHEUS_PORT, and refused out of range or equal
// to the HTTP port.
func TestLoadConfigMetricsPort(t *testing.T) {
	c, err := LoadConfig(nil, env(nil))
	if err != nil || c.MetricsPort != 0 {
		t.Fatalf("default metrics port %d (%v), want 0", c.MetricsPort, err)
	}
	if c, err = LoadConfig(nil, env(map[string]string{"ELECTRIC_PROMETHEUS_PORT": "9090"})); err != nil || c.MetricsPort != 9090 {
		t.Fatalf("ELECTRIC_PROMETHEUS_PORT: %d (%v)", c.MetricsPort, err)
	}
	if c, err = LoadConfig([]string{"-metrics-port", "9464"}, env(map[string]string{"VOLT_METRICS_PORT": "9091", "ELECTRIC_PROMETHEUS_PORT": "9090"})); err != nil || c.MetricsPort != 9464 {
		t.Fatalf("-metrics-port: %d (%v)", c.MetricsPort, err)
	}
	for _, args := range [][]string{{"-metrics-port", "-1"}, {"-metrics-port", "65536"}, {"-metrics-port", "3000"}} {
		_, err := LoadConfig(args, env(nil))
		if err == nil || !strings.Contains(err.Error(), "metrics port") {
			t.Errorf("%v: %v, want the metrics port named", args, err)
		}
	}
}
