package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/volttest"
	"github.com/voltsync/volt/server"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestDemoBrowser runs volt demo in-process against a test database and
// drives its page in headless Chromium (demo/test/demo.test.mjs, Node with
// playwright-core): the four patterns through add, edit, delete, latency,
// offline, rejection, reload and a second device. Then it checks Postgres
// against what the page showed, and that the rejections are real ones,
// with receipts.
//
// Like the compatibility suite, it fails (never skips) when something it
// needs is missing: Node, demo/node_modules (npm ci --prefix demo) and
// Chromium (Debian's chromium package, or $CHROMIUM). It builds the page
// first, so it tests the sources as they are. Screenshots go to
// $VOLT_ARTIFACTS/demo, or demo/test-results.
func TestDemoBrowser(t *testing.T) {
	demoDir, err := filepath.Abs("../../demo")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for this test (Node 20+): %v", err)
	}
	for _, pkg := range []string{"playwright-core", "esbuild", "@electric-sql/client", "@electric-sql/pglite"} {
		if _, err := os.Stat(filepath.Join(demoDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("demo/node_modules is missing %s (%v): run `npm ci --prefix demo` in the repository root first", pkg, err)
		}
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is required for this test (%v): install Debian's package (apt-get install chromium) or set CHROMIUM", err)
	}
	artifacts := filepath.Join(demoDir, "test-results")
	if dir := os.Getenv("VOLT_ARTIFACTS"); dir != "" {
		artifacts = filepath.Join(dir, "demo")
	}
	_ = os.RemoveAll(artifacts)

	start := time.Now()
	runNode(t, demoDir, 2*time.Minute, nil, node, "build.mjs")
	t.Logf("page built in %s", time.Since(start).Round(time.Millisecond))

	db := pgtest.NewDB(t)
	url := startDemo(t, db, filepath.Join(demoDir, "dist"))

	start = time.Now()
	out := runNode(t, demoDir, 6*time.Minute,
		[]string{"DEMO_URL=" + url, "CHROMIUM=" + chromium, "VOLT_ARTIFACTS=" + artifacts},
		node, "--test", "--test-force-exit", "--test-reporter=spec", "test/demo.test.mjs")
	t.Logf("browser test finished in %s; screenshots in %s", time.Since(start).Round(time.Millisecond), artifacts)
	if testing.Verbose() {
		t.Logf("node output:\n%s", out)
	}
	checkDemoDatabase(t, db, filepath.Join(artifacts, "final-state.json"))
}

// startDemo runs the demo server (serve with the demo's hooks) on a free
// port until the test ends, and returns the page's URL.
func startDemo(t *testing.T, db, assets string) string {
	t.Helper()
	d, err := newDemo(assets)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DatabaseURL, cfg.StorageDir, cfg.StreamID = db, t.TempDir(), "demo"
	cfg.Port = volttest.FreePort(t)
	cfg.LogLevel = "warn"
	logs := &syncBuffer{}
	log := newLogger(cfg.LogLevel, logs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, log, d.hooks(cfg.Port, log)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo server: %v", err)
		}
	})
	url := demoURL(cfg.Port)
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-done:
			t.Fatalf("demo server stopped: %v\n%s", err, logs.String())
		default:
		}
		if res, err := http.Get(url + "v1/health"); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo server not ready after a minute:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDemoDatabase compares each table with the list the page showed
// last, and checks that every list's rejections are in volt.receipts and
// that no rejected row reached a table.
func checkDemoDatabase(t *testing.T, db, finalState string) {
	t.Helper()
	b, err := os.ReadFile(finalState)
	if err != nil {
		t.Fatalf("the browser test wrote no final state: %v", err)
	}
	var shown map[string][]string // list → "title|state|done"
	if err := json.Unmarshal(b, &shown); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, list := range demoLists {
		table := demoTable(list)
		rows, _ := conn.Query(ctx, fmt.Sprintf(`SELECT title, done FROM %s`, table))
		got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
			var title string
			var done bool
			err := row.Scan(&title, &done)
			return fmt.Sprintf("%s|confirmed|%t", title, done), err
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		if page := shown[list]; len(page) == 0 || strings.Join(got, "\n") != strings.Join(page, "\n") {
			t.Errorf("%s: Postgres has\n  %s\nthe page showed\n  %s", table, strings.Join(got, "\n  "), strings.Join(page, "\n  "))
		}
		// The browser test has each list's server reject an insert and an
		// edit; the queueing lists also send an insert and its edit in one
		// request, the first rejected and the second then "dependent".
		want := map[string]int{CodeDemoRejected: 3, "dependent": 1}
		if list == "online" {
			want = map[string]int{CodeDemoRejected: 2, "dependent": 0}
		}
		for code, n := range want {
			var got int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM volt.receipts WHERE status = 'rejected' AND code = $1 AND client_id LIKE $2`,
				code, list+"-%").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Errorf("%s: %d rejected receipts with code %s, want %d", list, got, code, n)
			}
		}
	}
}

// syncBuffer collects the server's log lines, written from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// runNode runs node with args in dir and fails the test with its output
// when it fails or times out.
func runNode(t *testing.T, dir string, timeout time.Duration, env []string, node string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "NO_COLOR=1", "FORCE_COLOR=0")...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node %s timed out after %s:\n%s", strings.Join(args, " "), timeout, out.String())
	}
	if err != nil {
		t.Fatalf("node %s failed (%v):\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestDemoRejectNext: the switch rejects exactly the next write of its
// list, and bad requests get a status and a JSON body naming the problem.
func TestDemoRejectNext(t *testing.T) {
	d := &demo{reject: map[string]bool{}}
	call := func(method, target string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		d.serveRejectNext(rec, httptest.NewRequest(method, target, nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, target, rec.Body, err)
		}
		return rec.Code, body
	}
	if code, body := call(http.MethodPost, "/demo/reject-next?list=nope"); code != 400 || !strings.Contains(fmt.Sprint(body["message"]), `"nope"`) {
		t.Errorf("unknown list: %d %v", code, body)
	}
	if code, body := call(http.MethodPut, "/demo/reject-next?list=online"); code != 405 || body["message"] == nil {
		t.Errorf("PUT: %d %v", code, body)
	}
	if code, body := call(http.MethodPost, "/demo/reject-next?list=shared"); code != 200 || body["shared"] != true || body["online"] != false {
		t.Errorf("arm: %d %v", code, body)
	}
	ctx := context.Background()
	if err := d.check(ctx, nil, volt.Mutation{Table: "todos_online"}, nil, nil); err != nil {
		t.Errorf("online write with only shared armed: %v", err)
	}
	if err := d.check(ctx, nil, volt.Mutation{Table: "public.todos_shared"}, nil, nil); err == nil || !strings.Contains(err.Error(), "rejected on purpose") {
		t.Errorf("first shared write after arming: %v", err)
	}
	if err := d.check(ctx, nil, volt.Mutation{Table: "todos_shared"}, nil, nil); err != nil {
		t.Errorf("second shared write: %v", err)
	}
	// Tables are decided by allow, before any statement runs.
	if err := d.allow(ctx, nil, volt.Mutation{Table: "accounts"}); err == nil {
		t.Error("a write outside the demo's tables was allowed")
	}
	if err := d.allow(ctx, nil, volt.Mutation{Table: "public.todos_pglite"}); err != nil {
		t.Errorf("a write to a demo table was refused: %v", err)
	}
}
