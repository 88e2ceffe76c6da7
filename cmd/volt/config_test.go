package main

import (
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 3000 || c.LongPollTimeout != 20*time.Second || c.DatabaseURL != "" || c.ChunkBytes != 10<<20 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLoadConfigElectricAliasesAndFlags(t *testing.T) {
	c, err := LoadConfig([]string{"-port", "4000"}, env(map[string]string{
		"ELECTRIC_PORT": "3999", "ELECTRIC_SECRET": "s", "ELECTRIC_STORAGE_DIR": "/tmp/x",
		"ELECTRIC_LONG_POLL_TIMEOUT": "5000", "ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD": "10000",
		"ELECTRIC_CACHE_MAX_AGE": "1", "ELECTRIC_CACHE_STALE_AGE": "3", "ELECTRIC_ENABLE_INTEGRATION_TESTING": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 4000 || c.Secret != "s" || c.StorageDir != "/tmp/x" || c.LongPollTimeout != 5*time.Second ||
		c.ChunkBytes != 10000 || c.CacheMaxAge != 1 || c.CacheStaleAge != 3 || !c.AllowShapeDeletion {
		t.Fatalf("aliases/flags not applied: %+v", c)
	}
	// volt's own names win over Electric's.
	c, _ = LoadConfig(nil, env(map[string]string{"VOLT_PORT": "5000", "ELECTRIC_PORT": "6000"}))
	if c.Port != 5000 {
		t.Fatalf("VOLT_PORT should win: %d", c.Port)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(nil, env(map[string]string{
		"VOLT_PORT": "seventy", "DATABASE_URL": "mysql://x", "VOLT_LONG_POLL_TIMEOUT": "50s", "VOLT_CHUNK_BYTES": "10", "VOLT_LOG_LEVEL": "loud",
	}))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	msg := err.Error()
	for _, want := range []string{"VOLT_PORT", "DATABASE_URL must be", "long-poll timeout", "chunk size", "log level"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 5 {
		t.Errorf("want one sentence per problem (5), got %d:\n%s", n, msg)
	}
}

func TestListenHost(t *testing.T) {
	env := func(string) string { return "" }
	cases := []struct {
		args []string
		host string
		warn bool
		err  bool
	}{
		{nil, "127.0.0.1", false, false},
		{[]string{"-secret", "s"}, "", false, false},
		{[]string{"-rules", "r.json"}, "", false, false},
		{[]string{"--insecure"}, "", true, false},
		{[]string{"-host", "0.0.0.0"}, "", false, true},
		{[]string{"-host", "0.0.0.0", "--insecure"}, "0.0.0.0", true, false},
		{[]string{"-host", "0.0.0.0", "-secret", "s"}, "0.0.0.0", false, false},
		{[]string{"-host", "::1"}, "::1", false, false},
		{[]string{"-host", "localhost"}, "localhost", false, false},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(c.args, env)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		host, _, warn, err := cfg.ListenAddress()
		if host != c.host || warn != c.warn || (err != nil) != c.err {
			t.Errorf("%v: host %q warn %v err %v", c.args, host, warn, err)
		}
	}
}

func TestLoadConfigBackPressure(t *testing.T) {
	c, err := LoadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxShapes != 100_000 || c.MaxConcurrentInitial != 5000 || c.MaxConcurrentExisting != 10000 || c.StallTimeout != 30*time.Second {
		t.Fatalf("back-pressure defaults: shapes %d initial %d existing %d stall %s", c.MaxShapes, c.MaxConcurrentInitial, c.MaxConcurrentExisting, c.StallTimeout)
	}
	c, err = LoadConfig([]string{"-max-shapes", "50", "-max-concurrent-initial", "7", "-stall-timeout", "1s"},
		env(map[string]string{"VOLT_MAX_CONCURRENT_EXISTING": "80", "VOLT_MAX_CONCURRENT_INITIAL": "9", "VOLT_STALL_TIMEOUT": "2500"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxShapes != 50 || c.MaxConcurrentInitial != 7 || c.MaxConcurrentExisting != 80 || c.StallTimeout != time.Second {
		t.Fatalf("flags and env not applied: %+v", c)
	}
	c, _ = LoadConfig(nil, env(map[string]string{"VOLT_STALL_TIMEOUT": "2500"}))
	if c.StallTimeout != 2500*time.Millisecond {
		t.Fatalf("stall timeout in milliseconds: %s", c.StallTimeout)
	}
	_, err = LoadConfig([]string{"-max-shapes", "-1", "-max-concurrent-existing", "0", "-stall-timeout", "0s"}, env(nil))
	if err == nil {
		t.Fatal("bad back-pressure settings accepted")
	}
	for _, want := range []string{"shape limit", "concurrent request limits", "stall timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%s", want, err)
		}
	}
}

func TestLoadConfigShapeUpkeep(t *testing.T) {
	c, err := LoadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.SnapshotConcurrency != 0 || c.MaxOpenLogs != 4000 || c.ShapeTTL != 0 || c.CompactMinOps != 32 || c.CompactGrace != time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = LoadConfig([]string{"-snapshot-concurrency", "3", "-max-open-logs", "10", "-shape-ttl", "1h", "-compact-min-ops", "-1", "-compact-grace", "5s"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.SnapshotConcurrency != 3 || c.MaxOpenLogs != 10 || c.ShapeTTL != time.Hour || c.CompactMinOps != -1 || c.CompactGrace != 5*time.Second {
		t.Fatalf("flags: %+v", c)
	}
	if _, err := LoadConfig([]string{"-compact-min-ops", "0"}, env(nil)); err == nil {
		t.Fatal("-compact-min-ops 0 accepted")
	}
	if _, err := LoadConfig([]string{"-max-open-logs", "0"}, env(nil)); err == nil {
		t.Fatal("-max-open-logs 0 accepted")
	}
}

func TestLoadConfigConnectionsQuotasAndCORS(t *testing.T) {
	c, err := LoadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxShapesPerPrincipal != 1000 || c.MaxConnsPerIP != 256 || c.IdleTimeout != 120*time.Second ||
		c.HeaderTimeout != 10*time.Second || c.BodyTimeout != 30*time.Second || c.CORSOrigins != "" {
		t.Fatalf("defaults: %+v", c)
	}
	if o, err := c.CORSOriginList(); o != nil || err != nil {
		t.Fatalf("default CORS origins: %v %v", o, err)
	}
	c, err = LoadConfig([]string{"-max-shapes-per-principal", "0", "-max-conns-per-ip", "8", "-idle-timeout", "1s", "-body-timeout", "2000"},
		env(map[string]string{"VOLT_HEADER_TIMEOUT": "3s", "VOLT_CORS_ORIGINS": "https://app.example.com, http://localhost:5173,*"}))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := c.CORSOriginList()
	if c.MaxShapesPerPrincipal != 0 || c.MaxConnsPerIP != 8 || c.IdleTimeout != time.Second || c.BodyTimeout != 2*time.Second ||
		c.HeaderTimeout != 3*time.Second || strings.Join(o, " ") != "https://app.example.com http://localhost:5173 *" {
		t.Fatalf("flags and env not applied: %+v, origins %q", c, o)
	}
	_, err = LoadConfig([]string{"-max-conns-per-ip", "-1", "-idle-timeout", "0s", "-cors-origins", "app.example.com,https://a.example/path"}, env(nil))
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, want := range []string{"connection limit", "idle, header and body timeouts", `"app.example.com" is not an origin`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%s", want, err)
		}
	}
	if _, err := LoadConfig([]string{"-cors-origins", "https://a.example/path"}, env(nil)); err == nil || !strings.Contains(err.Error(), "https://a.example/path") {
		t.Errorf("an origin with a path: %v", err)
	}
}
