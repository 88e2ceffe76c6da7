// Package pgtest starts throwaway PostgreSQL clusters for tests, with the same
// code as volt's embedded default (internal/pgembed). One cluster serves a
// test binary; each test gets its own database. A test that needs Postgres
// fails (never skips) when Postgres cannot start.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgembed"
)

var (
	once     sync.Once
	shared   *pgembed.Cluster
	startErr error
	dbSeq    atomic.Int64
	baseDir  string
)

// Cluster returns the test binary's shared cluster, starting it on first use.
func Cluster(tb testing.TB) *pgembed.Cluster {
	tb.Helper()
	once.Do(func() {
		baseDir, startErr = os.MkdirTemp("", "volt-pgtest-")
		if startErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, startErr = pgembed.Start(ctx, pgembed.Options{DataDir: baseDir + "/data", NoFsync: true, Logger: quietLogger()})
	})
	if startErr != nil {
		tb.Fatalf("pgtest: cannot start PostgreSQL: %v", startErr)
	}
	return shared
}

// NewCluster starts a cluster private to the calling test (for tests that
// stop, kill or restart Postgres). It is stopped when the test ends.
func NewCluster(tb testing.TB) *pgembed.Cluster {
	tb.Helper()
	dir, err := os.MkdirTemp("", "volt-pgtest-own-")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir + "/data", NoFsync: true, Logger: quietLogger()})
	if err != nil {
		tb.Fatalf("pgtest: cannot start PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
		_ = os.RemoveAll(dir)
	})
	return c
}

// Main runs the tests, then stops the shared cluster and runs cleanup.
// Call it from TestMain.
func Main(m *testing.M, cleanup ...func()) {
	code := m.Run()
	for _, c := range cleanup {
		c()
	}
	if shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = shared.Stop(ctx)
		cancel()
	}
	if baseDir != "" {
		_ = os.RemoveAll(baseDir)
	}
	os.Exit(code)
}

// NewDB creates a fresh database on the shared cluster and returns its URL.
// Replication slots in it are dropped when the test ends.
func NewDB(tb testing.TB) string {
	tb.Helper()
	return NewDBOn(tb, Cluster(tb))
}

// NewDBOn creates a fresh database on cluster c and returns its URL.
func NewDBOn(tb testing.TB, c *pgembed.Cluster) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), sanitize(tb.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() { dropSlots(c, name) })
	return c.URL(name)
}

// Exec runs SQL statements against url, failing the test on error.
func Exec(tb testing.TB, url string, sql ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			tb.Fatalf("pgtest: %s: %v", s, err)
		}
	}
}

func dropSlots(c *pgembed.Cluster, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, db)
	for i := 0; i < 50; i++ {
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, db)
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // waiting for a terminated walsender to release its slot; no signal exists
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 32
		}
		return '_'
	}, s)
}
