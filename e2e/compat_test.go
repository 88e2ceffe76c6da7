package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestOfficialTypeScriptClient runs the Node test-suite in compat/ — the
// unchanged official @electric-sql/client against a running volt, compared
// with Postgres — and fails with Node's output when any of it fails.
//
// compat/node_modules must be installed beforehand (npm ci --prefix compat);
// the test fails, never skips, when it is missing.
func TestOfficialTypeScriptClient(t *testing.T) {
	compatDir, err := filepath.Abs("../compat")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(compatDir, "node_modules", "@electric-sql", "client", "package.json")); err != nil {
		t.Fatalf("compat/node_modules is missing (%v): run `npm ci --prefix compat` in the repository root first", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for this test (Node 20+): %v", err)
	}

	db := pgtest.NewDB(t)
	// A short long-poll timeout keeps idle live requests (and the whole run)
	// short; a short SSE timeout makes the SSE test see server-closed streams;
	// small chunks (Electric's CI value) make snapshots and catch-ups span
	// several chunks.
	// Subquery shapes are on for tanstack-moves and shapestream-moves (no
	// other file uses a subquery).
	const sseTimeout = "3s"
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=2s", "VOLT_SSE_TIMEOUT="+sseTimeout, "VOLT_CHUNK_BYTES=10000", "VOLT_INSECURE_WRITES=true")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// With no file arguments, node --test runs every *.test.mjs below the
	// working directory (node_modules excluded). --test-force-exit: the client
	// keeps a 60 s (ref'd) timer for its localStorage throttle, which would
	// otherwise hold every test file's process open for a minute.
	// Test files are independent (own tables), so three run at a time.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-force-exit", "--test-concurrency=3", "--test-reporter=spec")
	cmd.Dir = compatDir
	cmd.Env = append(os.Environ(), "VOLT_URL="+v.URL, "DATABASE_URL="+db, "VOLT_SSE_TIMEOUT="+sseTimeout, "NO_COLOR=1", "FORCE_COLOR=0")
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	t.Logf("node --test finished in %s", time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("node --test timed out after %s:\n%s", time.Since(start).Round(time.Second), out.String())
	}
	if err != nil {
		t.Fatalf("node --test failed (%v):\n%s", err, out.String())
	}
	if testing.Verbose() {
		t.Logf("node --test output:\n%s", out.String())
	}
}

// TestOfficialClientResumesAfterRestart: the official client stores its
// handle and offset, volt restarts, writes happen meanwhile, and the client
// resumes from what it stored (no re-sync, no 409) and ends equal to Postgres.
func TestOfficialClientResumesAfterRestart(t *testing.T) {
	compatDir, err := filepath.Abs("../compat")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(compatDir, "node_modules", "@electric-sql", "client", "package.json")); err != nil {
		t.Fatalf("compat/node_modules is missing (%v): run `npm ci --prefix compat` in the repository root first", err)
	}
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items SELECT g, 't' || g FROM generate_series(1, 30) g`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=2s")
	state := filepath.Join(t.TempDir(), "state.json")
	runNode := func(mode string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "restart/resume.mjs", mode, "items", state)
		cmd.Dir = compatDir
		cmd.Env = append(os.Environ(), "VOLT_URL="+v.URL, "DATABASE_URL="+db)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("node resume.mjs %s: %v\n%s", mode, err, out)
		}
	}
	runNode("save")
	v.Stop()
	pgtest.Exec(t, db, `UPDATE items SET title = 'changed while down' WHERE id <= 5`, `DELETE FROM items WHERE id = 30`, `INSERT INTO items VALUES (31, 'new')`)
	v.Restart()
	runNode("resume")
}
