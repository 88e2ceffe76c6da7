package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	voltlib "github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/volttest"
)

// The tests in this file run volt behind nginx configured from
// deploy/nginx/volt.conf, the way a CDN sits in front of Electric.

// nginxPath finds nginx: Debian installs it in /usr/sbin, which is not
// always on PATH.
func nginxPath() (string, error) {
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return exec.LookPath("nginx")
}

// proxy is a running nginx in front of one volt.
type proxy struct {
	t       *testing.T
	URL     string
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startNginx fills in deploy/nginx/volt.conf for upstream (host:port), wraps
// it in a main configuration whose every path lies in a temporary directory,
// and runs nginx in the foreground.
func startNginx(t *testing.T, upstream string) *proxy {
	t.Helper()
	nginxBin, err := nginxPath()
	if err != nil {
		t.Fatalf("nginx is needed for the caching-proxy tests and is not installed (%v); install it with: apt-get install -y nginx", err)
	}
	tmpl, err := os.ReadFile("../deploy/nginx/volt.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &proxy{t: t, dir: dir, logPath: filepath.Join(dir, "access.log")}
	port := freePort(t)
	p.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	conf := string(tmpl)
	for _, r := range [][2]string{
		{"server 127.0.0.1:3000;", "server " + upstream + ";"},
		// A long listen queue: a thousand clients connect at once.
		{"listen 8080;", "listen 127.0.0.1:" + strconv.Itoa(port) + " backlog=4096;"},
		{"proxy_cache_path /var/cache/nginx/volt ", "proxy_cache_path " + filepath.Join(dir, "cache") + " "},
		{"access_log /var/log/nginx/volt-access.log ", "access_log " + p.logPath + " "},
	} {
		if n := strings.Count(conf, r[0]); n != 1 {
			t.Fatalf("deploy/nginx/volt.conf: %q occurs %d times, want once", r[0], n)
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	voltConf := filepath.Join(dir, "volt.conf")
	if err := os.WriteFile(voltConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var wrapper strings.Builder
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody, which cannot enter the
		// test's 0700 temporary directory.
		wrapper.WriteString("user root root;\n")
	}
	tmp := filepath.Join(dir, "tmp")
	fmt.Fprintf(&wrapper, `worker_processes 2;
worker_rlimit_nofile 16384;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[3]s;
}
`, dir, tmp, voltConf)
	mainConf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainConf, []byte(wrapper.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-c", mainConf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// nginx does not outlive a test binary that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("nginx error log:\n%s", tail(p.errorLog(), 4000))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("nginx exited during start-up: %s\n%s", out.String(), p.errorLog())
		default:
		}
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not accept connections:\n%s", p.errorLog())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proxy) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// accessEntry is one line of the volt_json access log.
type accessEntry struct {
	Time     float64 `json:"time"`
	Method   string  `json:"method"`
	URI      string  `json:"uri"`
	Status   int     `json:"status"`
	Cache    string  `json:"cache"`
	Upstream string  `json:"upstream"`
}

// accessLog reads the access log written so far.
func (p *proxy) accessLog() []accessEntry {
	p.t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		p.t.Fatal(err)
	}
	var out []accessEntry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var e accessEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			p.t.Fatalf("access log line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// upstreamHits counts the logged requests that reached volt.
func upstreamHits(log []accessEntry) int {
	n := 0
	for _, e := range log {
		if e.Upstream != "" {
			n++
		}
	}
	return n
}

// through is a volt whose URL is the proxy's, for shapeURL and followers.
func (p *proxy) through() *volt { return &volt{&volttest.Server{URL: p.URL}} }

func upstreamOf(v *volt) string { return strings.TrimPrefix(v.URL, "http://") }

func cacheStatus(r response) string { return r.Header.Get("x-cache-status") }

// TestProxyFollower syncs a follower through nginx: initial sync, a second
// client served from the cache, live changes, a DELETE /v1/shape and the
// 409 that follows it, a fresh client that starts from the cached snapshot of
// the deleted shape; each ends equal to Postgres.
func TestProxyFollower(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=5s")
	p := startNginx(t, upstreamOf(v))
	pv := p.through()
	want := func() map[string]map[string]*string {
		return pgRows(t, db, "items", 1, `SELECT id, title FROM items`)
	}
	check := func(who string, f *follower) {
		t.Helper()
		if d := diffRows(f.rows, want()); d != "" {
			t.Fatalf("%s differs from Postgres: %s", who, d)
		}
		if len(f.violations) > 0 {
			t.Fatalf("%s: %v", who, f.violations)
		}
	}

	a := newFollower(pv, "table", "items")
	if r := a.poll(t); cacheStatus(r) != "MISS" {
		t.Errorf("first initial request: X-Cache-Status %q, want MISS", cacheStatus(r))
	}
	a.catchUp(t)
	check("follower a after the initial sync", a)

	// A second client makes the same requests: all answered by the cache.
	b := newFollower(pv, "table", "items")
	for !b.upToDate {
		if r := b.poll(t); cacheStatus(r) != "HIT" {
			t.Errorf("second client's %s: X-Cache-Status %q, want HIT", r.Header.Get("etag"), cacheStatus(r))
		}
	}
	check("follower b after the initial sync", b)

	// Live: a long-poll waiting in volt, through nginx, when the commit
	// arrives.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond)
		if err := execTx(db, `INSERT INTO items VALUES (51, 'fifty-one')`, `UPDATE items SET title = 'one!' WHERE id = 1`, `DELETE FROM items WHERE id = 2`); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	a.pollUntil(t, "the live change", func(rows map[string]map[string]*string) bool {
		_, ok := rows[`"public"."items"/"51"`]
		return ok
	})
	if n := len(a.rows); n != 50 {
		t.Errorf("a transaction arrived in parts: %d rows", n)
	}
	wg.Wait()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the live change took %v through the proxy", d)
	}
	check("follower a after a live change", a)
	b.pollUntil(t, "the live change", func(rows map[string]map[string]*string) bool {
		return len(rows) == 50 && rows[`"public"."items"/"2"`] == nil
	})
	check("follower b after a live change", b)

	// DELETE passes through; the next request of each follower gets a 409
	// with the new handle.
	oldHandle := a.handle
	if r := do(t, http.MethodDelete, pv.shapeURL("table", "items")); r.Status != 202 {
		t.Fatalf("DELETE through the proxy: %d %s", r.Status, r.Body)
	}
	pgtest.Exec(t, db, `INSERT INTO items VALUES (52, 'fifty-two')`)
	r := a.poll(t)
	if r.Status != 409 || a.handle == "" || a.handle == oldHandle {
		t.Fatalf("after DELETE: %d (X-Cache-Status %q), handle %q (old %q)", r.Status, cacheStatus(r), a.handle, oldHandle)
	}
	a.catchUp(t)
	check("follower a after the 409", a)
	if r := b.poll(t); r.Status != 409 || b.handle != a.handle {
		t.Fatalf("follower b after DELETE: %d, handle %q, want 409 towards %q", r.Status, b.handle, a.handle)
	}
	b.catchUp(t)
	check("follower b after the 409", b)

	// A fresh client gets the deleted shape's initial snapshot from the
	// cache (fresh for an hour), follows the cached log of the old handle
	// and is sent to the new one by a 409 as soon as it asks volt.
	c := newFollower(pv, "table", "items")
	if r := c.poll(t); cacheStatus(r) != "HIT" || r.Header.Get("electric-handle") != oldHandle {
		t.Errorf("fresh client's initial request: X-Cache-Status %q, handle %q; want a HIT of the old handle %q", cacheStatus(r), r.Header.Get("electric-handle"), oldHandle)
	}
	saw409 := false
	for i := 0; !saw409; i++ {
		if i > 50 {
			t.Fatal("the fresh client never got a 409")
		}
		saw409 = c.poll(t).Status == 409
	}
	c.catchUp(t)
	check("the fresh client", c)
	pgtest.Exec(t, db, `UPDATE items SET title = 'again' WHERE id = 3`)
	for _, f := range []*follower{a, b, c} {
		f.pollUntil(t, "the last update", func(rows map[string]map[string]*string) bool {
			r := rows[`"public"."items"/"3"`]
			return r != nil && *r["title"] == "again"
		})
	}
	check("follower a at the end", a)
	check("follower b at the end", b)
	check("follower c at the end", c)
}

// TestProxyPassesErrorsAndKeysPerUser checks what nginx caches and for whom:
// errors are never cached, 409s are cached as volt says, the secret and the
// Authorization header are part of the cache key, and the secret is not
// written to the access log.
func TestProxyPassesErrorsAndKeysPerUser(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items VALUES (1, 'one')`)
	const secret = "s3cret-token"
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=5s", "VOLT_SECRET="+secret)
	p := startNginx(t, upstreamOf(v))
	pv := p.through()

	expect := func(what string, r response, status int, cache string) {
		t.Helper()
		if r.Status != status || cacheStatus(r) != cache {
			t.Errorf("%s: %d, X-Cache-Status %q; want %d, %q (body %s)", what, r.Status, cacheStatus(r), status, cache, r.Body)
		}
	}
	// 401 (no secret) and 400 (bad offset): no-store, so every request
	// reaches volt.
	noSecret := pv.shapeURL("table", "items", "offset", "-1")
	expect("no secret", get(t, noSecret), 401, "MISS")
	expect("no secret again", get(t, noSecret), 401, "MISS")
	bad := pv.shapeURL("table", "items", "offset", "nonsense", "secret", secret)
	expect("bad offset", get(t, bad), 400, "MISS")
	expect("bad offset again", get(t, bad), 400, "MISS")

	// With the secret: cached.
	ok := pv.shapeURL("table", "items", "offset", "-1", "secret", secret)
	r := get(t, ok)
	expect("initial request", r, 200, "MISS")
	handle := r.Header.Get("electric-handle")
	expect("initial request again", get(t, ok), 200, "HIT")
	// A wrong secret is another key: it reaches volt and is refused.
	expect("wrong secret", get(t, pv.shapeURL("table", "items", "offset", "-1", "secret", "guess")), 401, "MISS")

	// Authorization is part of the key.
	expect("alice", get(t, ok, "Authorization", "Bearer alice"), 200, "MISS")
	expect("alice again", get(t, ok, "Authorization", "Bearer alice"), 200, "HIT")
	expect("bob", get(t, ok, "Authorization", "Bearer bob"), 200, "MISS")

	// volt echoes Origin in access-control-allow-origin and says "vary:
	// Origin": nginx keeps one variant per origin.
	catchUp := pv.shapeURL("table", "items", "offset", "0_0", "handle", handle, "secret", secret)
	for i, c := range []struct{ origin, cache string }{
		{"https://a.example", "MISS"}, {"https://a.example", "HIT"},
		{"https://b.example", "MISS"}, {"https://b.example", "HIT"}, {"https://a.example", "HIT"},
	} {
		r := get(t, catchUp, "Origin", c.origin)
		expect(fmt.Sprintf("origin request %d", i+1), r, 200, c.cache)
		if got := r.Header.Get("access-control-allow-origin"); got != c.origin {
			t.Errorf("origin request %d from %s: access-control-allow-origin %q", i+1, c.origin, got)
		}
	}

	// 409 for an unknown handle: passed through with its new handle, and
	// cached as volt's cache-control says.
	stale := pv.shapeURL("table", "items", "offset", "0_0", "handle", "123-456", "secret", secret)
	r = get(t, stale)
	expect("unknown handle", r, 409, "MISS")
	if r.Header.Get("electric-handle") != handle || !bytes.Contains(r.Body, []byte("must-refetch")) {
		t.Errorf("409 through the proxy: handle %q (want %q), body %s", r.Header.Get("electric-handle"), handle, r.Body)
	}
	expect("unknown handle again", get(t, stale), 409, "HIT")

	// HEAD is answered from the cache too; POST and DELETE are not cached.
	if r := do(t, http.MethodHead, ok); r.Status != 200 || cacheStatus(r) != "HIT" {
		t.Errorf("HEAD: %d, %q", r.Status, cacheStatus(r))
	}
	del := pv.shapeURL("table", "items", "handle", handle, "secret", secret)
	if r := do(t, http.MethodDelete, del); r.Status != 202 {
		t.Errorf("DELETE: %d %s", r.Status, r.Body)
	}
	if r := do(t, http.MethodDelete, del); r.Status != 404 {
		t.Errorf("second DELETE: %d %s, want 404 from volt", r.Status, r.Body)
	}

	log, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(log, []byte(secret)) || !bytes.Contains(log, []byte("secret=REDACTED")) {
		t.Errorf("the access log should show secret=REDACTED and never the secret:\n%s", log)
	}
}

// TestProxySSE checks that Server-Sent Events pass through nginx unbuffered
// and uncached: an event reaches the client when volt sends it, and two
// identical streams do not wait for each other.
func TestProxySSE(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items VALUES (1, 'one')`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=5s", "VOLT_SSE_TIMEOUT=20s")
	p := startNginx(t, upstreamOf(v))
	f := newFollower(p.through(), "table", "items")
	f.catchUp(t)
	kv := []string{"table", "items", "handle", f.handle, "offset", f.offset, "live", "true", "live_sse", "true", "cursor", f.cursor}

	// volt asks proxies not to buffer the stream (nginx drops the header).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.shapeURL(kv...), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("x-accel-buffering"); got != "no" {
		t.Errorf("volt's SSE response: x-accel-buffering %q, want no", got)
	}
	resp.Body.Close()

	type stream struct {
		events chan string
		header http.Header
	}
	open := func() stream {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.through().shapeURL(kv...), nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("content-type"), "text/event-stream") {
			t.Fatalf("SSE through the proxy: %d %v", resp.StatusCode, resp.Header)
		}
		s := stream{events: make(chan string, 16), header: resp.Header}
		go func() {
			defer close(s.events)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					s.events <- line
				}
			}
		}()
		return s
	}
	// Both are open (headers received) before the commit: a cache lock
	// would have held the second one back.
	s1, s2 := open(), open()
	for _, s := range []stream{s1, s2} {
		if got := s.header.Get("x-cache-status"); got != "BYPASS" {
			t.Errorf("SSE X-Cache-Status %q, want BYPASS", got)
		}
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	pgtest.Exec(t, db, `INSERT INTO items VALUES (2, 'two')`)
	for i, s := range []stream{s1, s2} {
		var got []string
		timeout := time.After(5 * time.Second)
	read:
		for {
			select {
			case ev, ok := <-s.events:
				if !ok {
					t.Fatalf("stream %d ended after %q", i+1, got)
				}
				got = append(got, ev)
				if strings.Contains(ev, `"up-to-date"`) {
					break read
				}
			case <-timeout:
				t.Fatalf("stream %d: no complete batch 5 s after the commit (got %q); is the proxy buffering?", i+1, got)
			}
		}
		if len(got) != 2 || !strings.Contains(got[0], `"insert"`) || !strings.Contains(got[0], `"two"`) {
			t.Errorf("stream %d: %q", i+1, got)
		}
	}
	t.Logf("SSE event through the proxy %v after the commit", time.Since(start).Round(time.Millisecond))
}

// execTx runs the statements in one transaction; unlike pgtest.Exec it may
// be called from any goroutine.
func execTx(db string, stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return tx.Commit(ctx)
}

// fetch is get for goroutines other than the test's: errors are returned.
func fetch(c *http.Client, rawURL string) (response, error) {
	resp, err := c.Get(rawURL)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode == 200 && len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &r.Msgs); err != nil {
			return r, fmt.Errorf("decode %s: %v", body, err)
		}
	}
	return r, nil
}

// pollWith is follower.poll for goroutines other than the test's. It also
// reports an offset that goes backwards within a handle.
func (f *follower) pollWith(c *http.Client) (response, error) {
	kv := append([]string{}, f.params...)
	kv = append(kv, "offset", f.offset)
	if f.handle != "" {
		kv = append(kv, "handle", f.handle)
	}
	if f.upToDate {
		kv = append(kv, "live", "true", "cursor", f.cursor)
	}
	r, err := fetch(c, f.v.shapeURL(kv...))
	if err != nil {
		return r, err
	}
	switch r.Status {
	case 200:
	case 409:
		f.handle, f.offset, f.upToDate = r.Header.Get("electric-handle"), "-1", false
		f.rows = map[string]map[string]*string{}
		f.violations = nil
		return r, nil
	default:
		return r, fmt.Errorf("GET %v: %d %s", kv, r.Status, r.Body)
	}
	handle, offset := r.Header.Get("electric-handle"), r.Header.Get("electric-offset")
	if handle == f.handle {
		prev, err1 := voltlib.ParseOffset(f.offset)
		next, err2 := voltlib.ParseOffset(offset)
		if err := errors.Join(err1, err2); err != nil {
			return r, fmt.Errorf("offsets %q → %q: %v", f.offset, offset, err)
		}
		if next.Less(prev) {
			f.violations = append(f.violations, fmt.Sprintf("offset went backwards: %s → %s (X-Cache-Status %s)", f.offset, offset, cacheStatus(r)))
		}
	}
	f.handle, f.offset, f.cursor = handle, offset, r.Header.Get("electric-cursor")
	for _, m := range r.Msgs {
		if m.control() == "up-to-date" {
			f.upToDate = true
		}
		f.apply(m)
	}
	return r, nil
}

// raiseFileLimit lifts the soft limit on open files to at least n (up to
// the hard limit).
func raiseFileLimit(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur = min(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < n {
		t.Logf("open-file limit %d (hard limit) is below %d", lim.Cur, n)
	}
}

// TestProxyCollapsesLongPolls: a thousand clients sync one shape through
// nginx and long-poll at its head with the same URL; each commit reaches all
// of them while volt sees O(1) requests, and none of them is ever served a
// response that breaks its sync.
func TestProxyCollapsesLongPolls(t *testing.T) {
	const (
		clients = 1000
		changes = 5
		// maxPerChange bounds the requests that reach volt per change: the
		// long-poll that receives it, plus slack for a long-poll timing out
		// or a cache lock being handed over.
		maxPerChange = 3
	)
	raiseFileLimit(t, 3*clients+1000)
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 60) g`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=5s", "VOLT_LOG_LEVEL=info")
	p := startNginx(t, upstreamOf(v))
	pv := p.through()

	hc := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        2 * clients,
			MaxIdleConnsPerHost: 2 * clients,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
	defer hc.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var (
		upToDate atomic.Int64
		received [changes + 1]atomic.Int64 // received[k]: clients that have change k
		mu       sync.Mutex
		failures []string
		statuses = map[string]int{}
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	markerKey := func(k int) string { return `"public"."items"/"` + strconv.Itoa(1000+k) + `"` }
	followers := make([]*follower, clients)
	var wg sync.WaitGroup
	for i := range followers {
		f := newFollower(pv, "table", "items")
		followers[i] = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen, wasUpToDate := 0, false
			local := map[string]int{}
			defer func() {
				mu.Lock()
				for k, n := range local {
					statuses[k] += n
				}
				mu.Unlock()
			}()
			for seen < changes {
				if ctx.Err() != nil {
					fail("client %d: stopped at change %d of %d", i, seen, changes)
					return
				}
				live := f.upToDate
				r, err := f.pollWith(hc)
				if err != nil {
					fail("client %d: %v", i, err)
					return
				}
				if r.Status != 200 {
					fail("client %d: unexpected %d (X-Cache-Status %s)", i, r.Status, cacheStatus(r))
				}
				if live {
					local[cacheStatus(r)]++
				}
				if f.upToDate && !wasUpToDate {
					wasUpToDate = true
					upToDate.Add(1)
				}
				for seen < changes {
					if _, ok := f.rows[markerKey(seen+1)]; !ok {
						break
					}
					seen++
					received[seen].Add(1)
				}
			}
		}()
	}

	waitAll := func(what string, n *atomic.Int64) time.Duration {
		start := time.Now()
		for n.Load() < clients {
			if ctx.Err() != nil {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: only %d of %d clients after %v; failures: %v", what, n.Load(), clients, time.Since(start), failures)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	initial := waitAll("initial sync", &upToDate)
	// Let every client reach its first long-poll at the head.
	time.Sleep(300 * time.Millisecond)
	commits := make([]float64, changes+1)
	latency := make([]time.Duration, changes+1)
	for k := 1; k <= changes; k++ {
		commits[k] = float64(time.Now().UnixNano()) / 1e9
		if err := execTx(db,
			fmt.Sprintf(`INSERT INTO items VALUES (%d, 'change %d')`, 1000+k, k),
			fmt.Sprintf(`UPDATE items SET title = 'changed by %d' WHERE id = %d`, k, k),
			fmt.Sprintf(`DELETE FROM items WHERE id = %d`, 50+k)); err != nil {
			t.Fatal(err)
		}
		latency[k] = waitAll(fmt.Sprintf("change %d", k), &received[k])
		// Every client has its next long-poll in flight again.
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	cancel()
	if len(failures) > 0 {
		t.Fatalf("%d+ client failures, first: %v", len(failures), failures)
	}

	// Requests that reached volt: before the first commit (the initial
	// sync and the first long-poll's wait), and per change: those that
	// completed between its commit and the next one.
	log := p.accessLog()
	perChange := make([]int, changes+1)
	before := 0
	for _, e := range log {
		if e.Upstream == "" {
			continue
		}
		k := sort.SearchFloat64s(commits[1:], e.Time+1e-9) // commits[1..k] <= e.Time
		if k == 0 {
			before++
		} else {
			perChange[k]++
		}
	}
	t.Logf("%d clients: initial sync in %v, %d requests through nginx, %d reached volt (%d before the first commit)",
		clients, initial.Round(time.Millisecond), len(log), upstreamHits(log), before)
	for k := 1; k <= changes; k++ {
		t.Logf("change %d: all %d clients had it %v after the commit; requests that reached volt: %d", k, clients, latency[k].Round(time.Millisecond), perChange[k])
		if perChange[k] > maxPerChange {
			t.Errorf("change %d: %d requests reached volt, want at most %d", k, perChange[k], maxPerChange)
		}
	}
	t.Logf("X-Cache-Status of the clients' long-polls: %v", statuses)
	if before > 3+maxPerChange {
		t.Errorf("initial sync of %d clients: %d requests reached volt", clients, before)
	}

	want := pgRows(t, db, "items", 1, `SELECT id, title FROM items`)
	bad := 0
	for i, f := range followers {
		d := diffRows(f.rows, want)
		if d == "" && len(f.violations) == 0 {
			continue
		}
		if bad++; bad <= 5 {
			t.Errorf("client %d: differs from Postgres: %s; violations: %v", i, d, f.violations)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d clients are wrong", bad, clients)
	}
}

// proxyCache is the cache status under Electric's header name; it must
// agree with X-Cache-Status.
func proxyCache(t *testing.T, r response) string {
	t.Helper()
	if a, b := r.Header.Get("x-proxy-cache"), cacheStatus(r); a != b {
		t.Errorf("X-Proxy-Cache %q but X-Cache-Status %q", a, b)
	}
	return r.Header.Get("x-proxy-cache")
}

// TestProxyStaleWhileRevalidate: an expired entry that volt marked
// stale-while-revalidate is served at once (STALE, then UPDATING) while
// volt cannot answer the refresh at all (its process is stopped), and the
// refresh lands in the cache once volt runs again.
func TestProxyStaleWhileRevalidate(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`,
		`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=5s", "VOLT_CACHE_MAX_AGE=1", "VOLT_CACHE_STALE_AGE=600")
	p := startNginx(t, upstreamOf(v))
	pv := p.through()

	initial := get(t, pv.shapeURL("table", "items", "offset", "-1"))
	if initial.Status != 200 {
		t.Fatalf("initial request: %d %s", initial.Status, initial.Body)
	}
	handle := initial.Header.Get("electric-handle")
	catchUp := pv.shapeURL("table", "items", "handle", handle, "offset", initial.Header.Get("electric-offset"))
	first := get(t, catchUp)
	if first.Status != 200 || proxyCache(t, first) != "MISS" {
		t.Fatalf("catch-up request: %d, X-Proxy-Cache %q; want 200 MISS", first.Status, proxyCache(t, first))
	}
	if cc := first.Header.Get("cache-control"); cc != "public, max-age=1, stale-while-revalidate=600" {
		t.Fatalf("catch-up request: cache-control %q", cc)
	}
	if r := get(t, catchUp); proxyCache(t, r) != "HIT" {
		t.Fatalf("second catch-up request: X-Proxy-Cache %q, want HIT", proxyCache(t, r))
	}
	// Nothing signals the expiry of an entry: wait out its max-age (nginx
	// counts in whole seconds, so a max-age of 1 ends within 2 s).
	time.Sleep(2100 * time.Millisecond)

	// volt stops answering: connections are still accepted by the kernel,
	// but no request gets a byte back.
	stopped, err := os.FindProcess(v.PID())
	if err != nil {
		t.Fatal(err)
	}
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The stop is asynchronous: on a loaded machine volt answered
	// nginx's refresh after the signal was sent. Wait until every thread
	// of it is stopped.
	proxyAwaitStopped(t, v.PID())
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = stopped.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume) // before volt's own cleanup stops it

	// A fresh connection for each request: nginx ends a request only once
	// its background refresh has, so a keep-alive connection reused after a
	// STALE answer waits for volt (deploy/nginx/README.md).
	fresh := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	for i, want := range []string{"STALE", "UPDATING", "UPDATING"} {
		start := time.Now()
		r, err := fetch(fresh(), catchUp)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("request %d with volt stopped: %v (after %v)", i+1, err, took)
		}
		if r.Status != 200 || proxyCache(t, r) != want || !bytes.Equal(r.Body, first.Body) {
			t.Fatalf("request %d with volt stopped: %d, X-Proxy-Cache %q, body %s; want 200, %s and the cached body", i+1, r.Status, proxyCache(t, r), r.Body, want)
		}
		// Generous for a loaded machine, far below anything that waited
		// for volt (which never answers while stopped).
		if took > 2*time.Second {
			t.Errorf("request %d with volt stopped took %v", i+1, took)
		}
		t.Logf("request %d with volt stopped: %s in %v", i+1, want, took.Round(time.Millisecond))
	}
	// An entry that is not in the cache has nothing stale to serve: that
	// request waits for volt.
	missing := make(chan response, 1)
	go func() {
		r, _ := fetch(fresh(), pv.shapeURL("table", "items", "handle", handle, "offset", first.Header.Get("electric-offset")))
		missing <- r
	}()
	select {
	case r := <-missing:
		t.Fatalf("a request not in the cache was answered with volt stopped: %d %s", r.Status, r.Body)
	case <-time.After(500 * time.Millisecond):
	}

	resume()
	if r := <-missing; r.Status != 200 || proxyCache(t, r) != "MISS" {
		t.Errorf("the uncached request once volt runs: %d, X-Proxy-Cache %q", r.Status, proxyCache(t, r))
	}
	// The background refresh completes (a 304 from volt revalidates the
	// entry): the next request is a HIT again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := get(t, catchUp)
		if s := proxyCache(t, r); s == "HIT" {
			if !bytes.Equal(r.Body, first.Body) {
				t.Errorf("revalidated entry: body %s, want %s", r.Body, first.Body)
			}
			break
		} else if s != "UPDATING" && s != "STALE" {
			t.Fatalf("after volt resumed: X-Proxy-Cache %q", s)
		}
		if time.Now().After(deadline) {
			t.Fatal("the background refresh never completed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proxyAwaitStopped waits until every thread of process pid is stopped
// (state T in /proc), as SIGSTOP leaves it.
func proxyAwaitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		stopped := len(tasks) > 0
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			if err != nil {
				stopped = false // a thread that just ended: look again
				break
			}
			// The state follows the command name, which is in parentheses.
			rest := b[bytes.LastIndexByte(b, ')')+1:]
			if f := strings.Fields(string(rest)); len(f) == 0 || (f[0] != "T" && f[0] != "t") {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped 10 s after SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond) // no signal tells when another process has stopped
	}
}
