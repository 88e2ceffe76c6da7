package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// standbyProc is a volt serve started by hand (volttest waits for an
// active health, which a standby never reports).
type standbyProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	exited chan struct{}
}

func (p *standbyProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *standbyProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startStandbyProc runs volt serve on the storage dir and port of active
// (the same replication stream), with env added.
func startStandbyProc(t *testing.T, active *volt, port int, env ...string) *standbyProc {
	t.Helper()
	p := &standbyProc{exited: make(chan struct{})}
	p.cmd = exec.Command(voltBin, "serve")
	p.cmd.Env = append(os.Environ(), "VOLT_STORAGE_DIR="+active.Storage, "VOLT_PORT="+strconv.Itoa(port),
		"VOLT_REPLICATION_STREAM_ID=s"+strconv.Itoa(active.Port), "VOLT_LOG_LEVEL=debug", "VOLT_LONG_POLL_TIMEOUT=1s")
	if active.DBURL != "" {
		p.cmd.Env = append(p.cmd.Env, "DATABASE_URL="+active.DBURL)
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("second volt's log:\n%s", p.log())
		}
	})
	return p
}

// waitLog waits (bounded) for the process to log s; a log line is the only
// signal a standby gives before it serves.
func (p *standbyProc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.log(), s) {
		select {
		case <-p.exited:
			t.Fatalf("volt exited while waiting for %q:\n%s", s, p.log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("volt never logged %q:\n%s", s, p.log())
		}
	}
}

// TestStandbyAnswersWaiting: a second volt on a storage directory in use
// waits as a standby: its health is 202 {"status":"waiting"} and shape
// requests get 503 with retry-after (it never touches the first one's
// files or Postgres: the first keeps serving), and SIGTERM stops it
// cleanly.
func TestStandbyAnswersWaiting(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY)`, `INSERT INTO items VALUES (1)`)
	active := startVolt(t, db)
	f := newFollower(active, "table", "items")
	f.catchUp(t)
	port := freePort(t)
	sb := startStandbyProc(t, active, port)
	sb.waitLog(t, "waiting as a standby")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	h := get(t, base+"/v1/health")
	if h.Status != http.StatusAccepted || !strings.Contains(string(h.Body), `"waiting"`) {
		t.Fatalf("standby health: %d %s", h.Status, h.Body)
	}
	r := get(t, base+"/v1/shape?table=items&offset=-1")
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("retry-after") == "" || !strings.Contains(string(r.Body), "standby") {
		t.Fatalf("standby shape request: %d %v %s", r.Status, r.Header, r.Body)
	}
	if a := get(t, active.shapeURL("table", "items", "offset", "-1")); a.Status != 200 || a.Header.Get("electric-handle") != f.handle {
		t.Fatalf("the active instance answers %d (handle %q, want %q) beside a standby", a.Status, a.Header.Get("electric-handle"), f.handle)
	}
	_ = sb.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sb.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the standby did not stop on SIGTERM")
	}
	if code := sb.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the standby exited with %d on SIGTERM:\n%s", code, sb.log())
	}
}

// TestStandbyTakesOverAfterKill9: the active volt is killed (SIGKILL)
// while writers write and clients long-poll several shapes; the standby on
// the same storage directory and port takes over within seconds, serving
// the same shapes under the same handles: each client sees at most one
// failed request, never a 409, never a new snapshot, and ends with
// Postgres' rows. With the embedded Postgres, the killed volt's Postgres
// outlives it: the standby stops it and starts its own on the same data.
// Compaction is off: it gives a shape a new handle by design, and under a
// loaded CI run the writers made it retire a polled handle (409), which
// says nothing about the takeover.
func TestStandbyTakesOverAfterKill9(t *testing.T) {
	t.Run("database-url", func(t *testing.T) { takeoverUnderLoad(t, false) })
	t.Run("embedded", func(t *testing.T) { takeoverUnderLoad(t, true) })
}

func takeoverUnderLoad(t *testing.T, embedded bool) {
	var active *volt
	var db string
	const noCompaction = "VOLT_COMPACT_MIN_OPS=-1"
	if embedded {
		active = startVolt(t, "", noCompaction)
		db = embeddedURL(t, active.Log())
	} else {
		db = pgtest.NewDB(t)
		active = startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=1s", noCompaction)
	}
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text, n int)`,
		`INSERT INTO items SELECT g, 't' || g, g % 10 FROM generate_series(1, 300) g`)
	wheres := []string{"", "n % 2 = 0", "n % 2 = 1", "id <= 100"}
	clients := make([]*takeoverClient, len(wheres))
	for i, w := range wheres {
		clients[i] = &takeoverClient{base: active.URL, where: w}
		if err := clients[i].catchUp(); err != nil {
			t.Fatal(err)
		}
	}
	sb := startStandbyProc(t, active, active.Port, noCompaction)
	sb.waitLog(t, "waiting as a standby")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writers sync.WaitGroup
	writeCtx, stopWriting := context.WithCancel(ctx)
	seed := testseed.Seed(t)
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func(w int) {
			defer writers.Done()
			writeAcrossRestarts(writeCtx, db, rand.New(rand.NewPCG(seed, uint64(w))))
		}(w)
	}
	var cwg sync.WaitGroup
	for _, c := range clients {
		cwg.Add(1)
		go func() { defer cwg.Done(); c.follow(ctx) }()
	}
	for _, c := range clients { // every client is live on the active one
		c.waitPolls(t, 3)
	}
	killed := time.Now()
	active.Kill()
	sb.waitLog(t, "volt is serving")
	t.Logf("the standby served %s after the kill", time.Since(killed).Round(time.Millisecond))
	for _, c := range clients { // and every client is live on the new one
		c.waitPolls(t, c.polls.Load()+3)
	}
	stopWriting()
	writers.Wait()
	waitCaughtUp(t, db, 2*time.Minute)
	for _, c := range clients {
		query := `SELECT id, title, n FROM items`
		if c.where != "" {
			query += " WHERE " + c.where
		}
		want := pgRows(t, db, "items", 1, query)
		deadline := time.Now().Add(30 * time.Second)
		for diffRows(c.snapshotRows(), want) != "" {
			if time.Now().After(deadline) {
				diff := diffRows(c.snapshotRows(), want)
				cancel()
				cwg.Wait() // a client that stopped on a problem says why
				t.Fatalf("shape %q after the takeover: %s (the client's problem: %q)", c.where, diff, c.problem)
			}
			time.Sleep(20 * time.Millisecond) // the client goroutine applies changes as they come
		}
	}
	cancel()
	cwg.Wait()
	for _, c := range clients {
		if c.problem != "" {
			t.Fatalf("shape %q: %s", c.where, c.problem)
		}
		if c.failures > 1 {
			t.Fatalf("shape %q: %d failed requests across the takeover (at most 1): %v", c.where, c.failures, c.errs)
		}
	}
}

// embeddedURL is the embedded Postgres' URL, from volt's log.
func embeddedURL(t *testing.T, log string) string {
	t.Helper()
	m := regexp.MustCompile(`connect with" url="?(postgres://[^" ]+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no embedded Postgres URL in the log:\n%s", log)
	}
	return strings.Replace(m[1], "/postgres?", "/postgres?", 1)
}

// writeAcrossRestarts writes random changes until ctx ends, reconnecting
// when Postgres restarts under it (a failed statement may or may not have
// committed; the rows are compared with Postgres' only after the writers
// stop).
func writeAcrossRestarts(ctx context.Context, db string, rng *rand.Rand) {
	for ctx.Err() == nil {
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond): // Postgres is restarting: retry
			}
			continue
		}
		for ctx.Err() == nil {
			// Not ctx: a cancelled statement can still commit after the
			// writer has given up (see writeRandomly).
			if _, err := conn.Exec(context.Background(), randomItemWrite(rng)); err != nil {
				break
			}
		}
		conn.Close(context.Background())
	}
}

// takeoverClient follows one shape as the official clients do, retrying
// a failed request after 100 ms (their first backoff), and records what
// would hurt a user: failures, 409s, new snapshots.
type takeoverClient struct {
	base, where string

	mu             sync.Mutex
	rows           map[string]map[string]*string
	handle, offset string
	cursor         string
	live           bool
	polls          atomic.Int64

	failures int
	errs     []string
	problem  string // a 409, a changed handle, a doubled or lost change
}

func (c *takeoverClient) catchUp() error {
	c.rows, c.offset = map[string]map[string]*string{}, "-1"
	for !c.live {
		if _, err := c.request(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

func (c *takeoverClient) follow(ctx context.Context) {
	for ctx.Err() == nil {
		status, err := c.request(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil || status >= 500:
			c.failures++
			c.errs = append(c.errs, fmt.Sprint(status, err))
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		case status != 200:
			c.problem = fmt.Sprintf("answer %d at offset %s", status, c.offset)
			return
		}
	}
}

func (c *takeoverClient) request(ctx context.Context) (int, error) {
	q := url.Values{"table": {"items"}, "offset": {c.offset}}
	if c.where != "" {
		q.Set("where", c.where)
	}
	if c.handle != "" {
		q.Set("handle", c.handle)
	}
	if c.live {
		q.Set("live", "true")
		q.Set("cursor", c.cursor)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/shape?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return resp.StatusCode, err
	}
	if h := resp.Header.Get("electric-handle"); c.handle != "" && h != c.handle {
		c.problem = fmt.Sprintf("handle changed from %s to %s", c.handle, h)
	}
	var msgs []message
	if err := json.Unmarshal(body, &msgs); err != nil {
		return resp.StatusCode, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handle, c.offset, c.cursor = resp.Header.Get("electric-handle"), resp.Header.Get("electric-offset"), resp.Header.Get("electric-cursor")
	f := follower{rows: c.rows}
	for _, m := range msgs {
		if m.control() == "up-to-date" {
			c.live = true
		}
		f.apply(m)
	}
	if len(f.violations) > 0 {
		c.problem = strings.Join(f.violations, "; ")
	}
	c.polls.Add(1)
	return resp.StatusCode, nil
}

// waitPolls waits (bounded) until the client has had n answers.
func (c *takeoverClient) waitPolls(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for c.polls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("shape %q: %d answers, waiting for %d", c.where, c.polls.Load(), n)
		}
		time.Sleep(10 * time.Millisecond) // the client goroutine counts its answers
	}
}

// snapshotRows copies the client's rows.
func (c *takeoverClient) snapshotRows() map[string]map[string]*string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]map[string]*string, len(c.rows))
	for k, v := range c.rows {
		out[k] = maps.Clone(v)
	}
	return out
}
