package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/volttest"
)

var voltBin string

func TestMain(m *testing.M) {
	bin, cleanup := volttest.MustBuild()
	voltBin = bin
	pgtest.Main(m, cleanup)
}

// Two instances against one volt serve: B goes offline, writes, A writes
// meanwhile, B comes back, and both end with the server's list.
func TestTwoInstancesConverge(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	srv := volttest.Start(t, voltBin, dbURL, "VOLT_INSECURE_WRITES=true")
	a := newTestApp(t, srv.URL)
	bProxy := newCountingProxy(t, srv.URL) // counts B's requests
	b := newTestApp(t, bProxy.URL)

	do(t, a, "online", "add buy milk", "add walk dog", "add call mom", "add read book")
	waitSynced(t, "A's adds", a, 4)
	do(t, b, "online")
	waitSynced(t, "B's first sync", b, 4)
	sameItems(t, a, b)

	do(t, b, "offline")
	sent := bProxy.requests.Load()
	do(t, b, "add fix bike")
	do(t, b, "done "+nth(t, b, "fix bike"))
	do(t, b, "done "+nth(t, b, "walk dog"))
	do(t, b, "add water plants")
	do(t, b, "done "+nth(t, b, "read book"))
	do(t, a, "edit "+nth(t, a, "buy milk")+" buy oat milk")
	do(t, a, "rm "+nth(t, a, "call mom"))
	do(t, a, "edit "+nth(t, a, "walk dog")+" walk the dog")
	do(t, a, "rm "+nth(t, a, "read book"))
	waitSynced(t, "A's edits", a, 2)

	// Offline, B made no request, still shows its own view and has its
	// writes pending.
	if got := bProxy.requests.Load(); got != sent {
		t.Fatalf("B made %d requests while offline", got-sent)
	}
	want := map[string]string{"buy milk": "synced", "call mom": "synced", "fix bike": "pending",
		"walk dog": "pending", "water plants": "pending", "read book": "pending"}
	if got := states(t, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("B offline: got %v, want %v", got, want)
	}
	out := do(t, b, "ls")
	if !strings.Contains(out, "offline, 5 local transaction(s) pending") || !strings.Contains(out, "[x] fix bike") {
		t.Fatalf("B's ls offline:\n%s", out)
	}

	// Online again: B's writes go up, A's come down. B's completion of
	// "read book", which A removed, is refused (update of a missing row).
	do(t, b, "online")
	waitFor(t, "convergence", func() bool {
		return allSynced(t, a) && allSynced(t, b) && reflect.DeepEqual(rows(t, a), rows(t, b))
	})
	wantRows := []string{"buy oat milk done=false", "fix bike done=true", "walk the dog done=true", "water plants done=false"}
	if got := rows(t, a); !reflect.DeepEqual(got, wantRows) {
		t.Fatalf("converged to %v, want %v", got, wantRows)
	}
	if got := pgRows(t, dbURL); !reflect.DeepEqual(got, wantRows) {
		t.Fatalf("postgres has %v, want %v", got, wantRows)
	}
	out = do(t, b, "ls")
	if !strings.Contains(out, "read book") || !strings.Contains(out, "rejected (not saved)") {
		t.Fatalf("B's ls does not show the rejected write:\n%s", out)
	}
	if !strings.Contains(b.cfg.Out.(*lockedBuffer).String(), `rejected: "read book" (conflict`) {
		t.Fatalf("B did not report the rejection:\n%s", b.cfg.Out)
	}
}

// A store that has never synced works offline from the start, and its
// writes reach the server on the first online.
func TestOfflineFromTheStart(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL, `INSERT INTO todos VALUES ('00000000-0000-4000-8000-000000000001', 'from server', false)`)
	srv := volttest.Start(t, voltBin, dbURL, "VOLT_INSECURE_WRITES=true")
	a := newTestApp(t, srv.URL)
	do(t, a, "add offline first", "done 1")
	if got, want := states(t, a), map[string]string{"offline first": "pending"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	do(t, a, "online")
	waitSynced(t, "first sync", a, 2)
	want := []string{"from server done=false", "offline first done=true"}
	if got := rows(t, a); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := pgRows(t, dbURL); !reflect.DeepEqual(got, want) {
		t.Fatalf("postgres has %v, want %v", got, want)
	}

	do(t, a, "offline", "rm 1")
	if out := do(t, a, "ls"); !regexp.MustCompile(`from server +removed, pending`).MatchString(out) {
		t.Fatalf("ls after rm offline:\n%s", out)
	}
	do(t, a, "online")
	waitSynced(t, "the delete", a, 1)
	if got, want := pgRows(t, dbURL), []string{"offline first done=true"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("postgres has %v, want %v", got, want)
	}
}

// newTestApp opens an app on a fresh store; it is closed when the test ends.
func newTestApp(t *testing.T, url string) *app {
	t.Helper()
	a, err := newApp(config{URL: url, Path: filepath.Join(t.TempDir(), "todos.db"), Out: &lockedBuffer{},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", url, a.cfg.Out)
		}
	})
	return a
}

// do runs commands and returns what they printed (the sync goroutines'
// messages included).
func do(t *testing.T, a *app, cmds ...string) string {
	t.Helper()
	buf := a.cfg.Out.(*lockedBuffer)
	before := buf.Len()
	if err := a.run(strings.NewReader(strings.Join(cmds, "\n"))); err != nil {
		t.Fatal(err)
	}
	out := buf.String()[before:]
	if strings.Contains(out, "error:") {
		t.Fatalf("%q:\n%s", cmds, out)
	}
	return out
}

// nth returns the number ls gives the todo titled title.
func nth(t *testing.T, a *app, title string) string {
	t.Helper()
	items, err := a.items()
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		if it.Title == title {
			return fmt.Sprint(i + 1)
		}
	}
	t.Fatalf("no todo %q in %v", title, items)
	return ""
}

// states returns each todo's state, by title.
func states(t *testing.T, a *app) map[string]string {
	t.Helper()
	items, err := a.items()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, it := range items {
		out[it.Title] = it.State
	}
	return out
}

// rows returns the todos as "title done=…", sorted; titles are unique in
// these tests, so a doubled todo shows.
func rows(t *testing.T, a *app) []string {
	t.Helper()
	items, err := a.items()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("%s done=%v", it.Title, it.Done))
	}
	sort.Strings(out)
	return out
}

// allSynced reports whether the server has decided and echoed every
// local write of a.
func allSynced(t *testing.T, a *app) bool {
	t.Helper()
	n, err := a.db.Pending()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states(t, a) {
		if s == "pending" {
			return false
		}
	}
	return n == 0
}

// waitSynced waits until a shows n todos and nothing pending.
func waitSynced(t *testing.T, what string, a *app, n int) {
	t.Helper()
	waitFor(t, what, func() bool { return len(states(t, a)) == n && allSynced(t, a) })
}

func sameItems(t *testing.T, a, b *app) {
	t.Helper()
	if ra, rb := rows(t, a), rows(t, b); !reflect.DeepEqual(ra, rb) {
		t.Fatalf("A has %v, B has %v", ra, rb)
	}
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pgRows returns the server's todos as rows does.
func pgRows(t *testing.T, dbURL string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rs, err := conn.Query(ctx, `SELECT title || ' done=' || done FROM todos ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// countingProxy forwards to volt and counts the requests it receives.
type countingProxy struct {
	URL      string
	requests atomic.Int64
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	p.URL = s.URL
	return p
}

// lockedBuffer is an app's output: the command loop and the sync
// goroutines write it while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
