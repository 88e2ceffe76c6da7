package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// cliFor returns a cli with env as its environment and buffers for output.
func cliFor(env map[string]string) (cli, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	return cli{
		getenv:  func(k string) string { return env[k] },
		environ: func() []string { return environ },
		stdin:   strings.NewReader(""),
		stdout:  &out,
		stderr:  &errOut,
	}, &out, &errOut
}

// Every command answers -h and --help with its usage and no error (exit 0).
func TestHelpEveryCommand(t *testing.T) {
	for _, cmd := range [][]string{{}, {"serve"}, {"demo"}, {"bench"}, {"version"}, {"reset"}} {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), h)
			c, out, errOut := cliFor(nil)
			if err := run(context.Background(), args, c); err != nil {
				t.Errorf("volt %v: %v", args, err)
			}
			if text := out.String() + errOut.String(); !strings.Contains(text, "Usage") {
				t.Errorf("volt %v printed no usage:\n%s", args, text)
			}
		}
	}
}

// The other commands' -h lists each flag with its default, false and empty
// ones included, and the environment they read.
func TestHelpListsDefaults(t *testing.T) {
	want := map[string][]string{
		"bench": {"  -quick\n\tsmall sizes only", "\tdefault: false\n", "  -only\n", "default: bench/results\n", "reads no environment variables"},
		"demo":  {"  -dir\n", "default: ./volt-demo\n", "default: 3000\n", "DATABASE_URL"},
		"reset": {"  -yes\n", "default: false\n", "  -replication-stream-id\n", "default: default; env: VOLT_REPLICATION_STREAM_ID, ELECTRIC_REPLICATION_STREAM_ID\n", "env: DATABASE_URL\n"},
	}
	for cmd, wants := range want {
		c, _, errOut := cliFor(nil)
		if err := run(context.Background(), []string{cmd, "-h"}, c); err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("volt %s -h lacks %q:\n%s", cmd, w, errOut)
			}
		}
	}
}

// volt serve -h lists every flag with its default and its environment
// variables, from the configuration itself.
func TestServeHelpListsDefaultsAndEnv(t *testing.T) {
	c, _, errOut := cliFor(nil)
	if err := run(context.Background(), []string{"serve", "-h"}, c); err != nil {
		t.Fatal(err)
	}
	help := errOut.String()
	d := DefaultConfig()
	for _, s := range settings(&d) {
		def := s.val.String()
		if def == "" {
			def = "none"
		}
		want := "  -" + s.flag + "\n\t" + s.usage + "\n\tdefault: " + def + "; env: " + strings.Join(s.env, ", ") + "\n"
		if !strings.Contains(help, want) {
			t.Errorf("volt serve -h lacks %q", want)
		}
	}
	for _, want := range []string{"default: 3000; env: VOLT_PORT, ELECTRIC_PORT, PORT", "default: 20s; env: VOLT_LONG_POLL_TIMEOUT", "default: ./volt-data"} {
		if !strings.Contains(help, want) {
			t.Errorf("volt serve -h lacks %q", want)
		}
	}
	// An environment variable does not change the defaults shown.
	c, _, errOut = cliFor(map[string]string{"VOLT_PORT": "4444"})
	if err := run(context.Background(), []string{"serve", "-h"}, c); err != nil || strings.Contains(errOut.String(), "4444") {
		t.Errorf("help shows the environment's value instead of the default (err %v)", err)
	}
	// Bool flags still need no value.
	cfg, err := LoadConfig([]string{"--insecure", "-allow-shape-deletion"}, env(nil))
	if err != nil || !cfg.Insecure || !cfg.AllowShapeDeletion {
		t.Fatalf("bool flags without a value: %v %+v", err, cfg)
	}
}

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "github.com/voltsync/volt", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	text := versionText(bi, true)
	for _, want := range []string{"volt v1.2.3\n", "revision abc123\n", "time     2026-01-02T03:04:05Z\n", "modified", "go1.99"} {
		if !strings.Contains(text, want) {
			t.Errorf("version text lacks %q:\n%s", want, text)
		}
	}
	// go test and go run builds: no version, no VCS settings.
	text = versionText(&debug.BuildInfo{GoVersion: "go1.99"}, true)
	for _, want := range []string{"volt (devel)\n", "module   github.com/voltsync/volt\n", "revision unknown"} {
		if !strings.Contains(text, want) {
			t.Errorf("version text lacks %q:\n%s", want, text)
		}
	}
	if text := versionText(nil, false); !strings.Contains(text, "no build information") {
		t.Errorf("version text without build info: %s", text)
	}
	// This test binary.
	c, out, _ := cliFor(nil)
	if err := run(context.Background(), []string{"version"}, c); err != nil || !strings.HasPrefix(out.String(), "volt ") {
		t.Fatalf("volt version: %v %q", err, out.String())
	}
	if err := run(context.Background(), []string{"version", "extra"}, c); err == nil {
		t.Error("volt version accepted an argument")
	}
}

// A binary built from the repository names its commit, and answers -h
// with exit status 0.
func TestBuiltBinaryVersionAndHelp(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "volt")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^revision [0-9a-f]{40}$`).Match(out) || !regexp.MustCompile(`(?m)^time     \d{4}-\d\d-\d\dT`).Match(out) ||
		!regexp.MustCompile(`(?m)^volt v\S+$`).Match(out) {
		t.Fatalf("volt version of a VCS build:\n%s", out)
	}
	// The process exits 0 on -h, and 1 on a wrong flag.
	for _, args := range [][]string{{"-h"}, {"serve", "-h"}, {"serve", "--help"}, {"demo", "-h"}, {"bench", "-h"}, {"version", "-h"}, {"reset", "-h"}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "Usage") {
			t.Errorf("volt %v: %v\n%s", args, err, out)
		}
	}
	if err := exec.Command(bin, "serve", "-no-such-flag").Run(); err == nil {
		t.Error("volt serve -no-such-flag exited 0")
	}
}

func TestIgnoredElectricSettings(t *testing.T) {
	environ := []string{"ELECTRIC_PROMETHEUS_PORT=9090", "ELECTRIC_PORT=3001", "ELECTRIC_SECRET=s", "ELECTRIC_EMPTY=",
		"ELECTRIC_POOLED_DATABASE_URL=postgres://x", "VOLT_PORT=1", "PATH=/bin", "ELECTRIC_FUTURE_THING=1"}
	got := ignoredElectric(environ)
	// ELECTRIC_PROMETHEUS_PORT is read, as -metrics-port's alias.
	want := []string{"ELECTRIC_FUTURE_THING", "ELECTRIC_POOLED_DATABASE_URL"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ignored = %v, want %v", got, want)
	}
}

// volt serve logs a warning for each Electric setting it ignores (here it
// then stops at once: its context is already over).
func TestServeWarnsOfIgnoredElectricSettings(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _, errOut := cliFor(map[string]string{
		"ELECTRIC_OTLP_ENDPOINT": "http://otel:4318", "ELECTRIC_PROMETHEUS_PORT": "9090", "ELECTRIC_PORT": "3999", "ELECTRIC_STORAGE_DIR": t.TempDir(),
		"DATABASE_URL": "postgres://volt@127.0.0.1:1/none",
	})
	_ = run(ctx, []string{"serve"}, c)
	log := errOut.String()
	var warn string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "ELECTRIC_OTLP_ENDPOINT") {
			warn = line
		}
	}
	if !strings.Contains(warn, "level=WARN") || !strings.Contains(warn, "ignored") || !strings.Contains(warn, "OpenTelemetry") {
		t.Fatalf("no warning for ELECTRIC_OTLP_ENDPOINT in:\n%s", log)
	}
	if strings.Contains(log, "ELECTRIC_PORT ") || strings.Contains(log, "ELECTRIC_STORAGE_DIR") || strings.Contains(log, "ELECTRIC_PROMETHEUS_PORT") {
		t.Fatalf("a supported Electric setting was reported as ignored:\n%s", log)
	}
}
