package pgembed

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartStopReuse(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgembed-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := Options{DataDir: dir + "/data", NoFsync: true, Output: testWriter{t}}
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A second start reuses the directory and its data.
	c2, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop(ctx)
	conn, err = pgx.Connect(ctx, c2.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("data not kept across restart: v=%d err=%v", v, err)
	}
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil || level != "logical" {
		t.Fatalf("wal_level=%q err=%v", level, err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestStaleStopSparesOtherClusters: after a crash, the pid in a data
// directory's postmaster.pid may have been reused by another cluster's
// process. Starting again stops a postmaster left running in the same
// directory, and nothing else (the old code stopped any process named
// postgres, taking down other test binaries' clusters now and then).
func TestStaleStopSparesOtherClusters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	other, err := Start(ctx, Options{DataDir: t.TempDir() + "/other", NoFsync: true, Output: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop(ctx)

	opts := Options{DataDir: t.TempDir() + "/data", NoFsync: true, Output: testWriter{t}}
	first, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A postmaster still running in the directory (volt died without
	// stopping it) is stopped by the next start.
	second, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start over a leftover postmaster: %v", err)
	}
	select {
	case <-first.done:
	default:
		t.Fatal("the leftover postmaster in the same directory is still running")
	}
	second.Kill()

	// The crashed cluster's pid file now names the other cluster's
	// postmaster, as a reused pid would.
	pidFile := opts.DataDir + "/postmaster.pid"
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 2)
	lines[0] = strconv.Itoa(other.cmd.Process.Pid)
	if err := os.WriteFile(pidFile, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start after a crash: %v", err)
	}
	defer third.Stop(ctx)
	conn, err := pgx.Connect(ctx, other.URL("postgres"))
	if err != nil {
		t.Fatalf("the other cluster was stopped: %v", err)
	}
	conn.Close(ctx)
}
