package main

// volt demo: the four write patterns of docs/PATTERNS.md side by side, each
// a to-do list in one web page, on volt's own shape and write endpoints.
//
// The command is volt serve with hooks (server.Hooks):
//   - Setup creates one table per pattern, so the lists are independent and
//     each can be made to fail on its own;
//   - Check lets POST /v1/mutations write those four tables and nothing
//     else (not -insecure-writes, which opens all of schema public), and
//     rejects a list's next transaction when the page asked for it;
//   - Web serves the page built under demo/dist and /demo/reject-next from
//     the same origin as /v1, so the browser needs no CORS.
//
// Nothing in the page is faked: a rejection comes back from the endpoint as
// a real "rejected" result with a receipt in volt.receipts, and "offline"
// and "latency" are a fetch wrapper in the page that the official client
// and the writes go through (demo/src/net.js).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/server"
)

// demoLists are the page's lists, one per pattern, in the order of
// docs/PATTERNS.md: online writes, optimistic state in memory, shared
// persistent optimistic state, through the database (PGlite). Each has its
// own table, demoTable(list).
var demoLists = []string{"online", "optimistic", "shared", "pglite"}

// demoTable is list's table: "todos_online" for "online".
func demoTable(list string) string { return "todos_" + list }

// CodeDemoRejected is the rejection code of a write refused because the
// page pressed "Reject next write".
const CodeDemoRejected = "rejected_by_demo"

// buildHint names the commands that build the page.
const buildHint = "npm ci --prefix demo && npm run build --prefix demo"

// demoTableSQL creates a list's table. The CHECK gives the page a second,
// ordinary kind of rejection (code "constraint") besides the switch.
const demoTableSQL = `CREATE TABLE IF NOT EXISTS %s (
	id uuid PRIMARY KEY,
	title text NOT NULL CONSTRAINT %s_title_length CHECK (length(title) BETWEEN 1 AND 200),
	done boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now()
)`

const demoUsage = `Usage: volt demo [flags]

Starts volt (with an embedded Postgres unless DATABASE_URL is set) and a web
page at http://localhost:PORT/ with four to-do lists side by side, one per
write pattern (docs/PATTERNS.md). Build the page first, from the repository
root:

  ` + buildHint + `

Environment:
  DATABASE_URL   Postgres to use (wal_level=logical); default: none, an
                 embedded Postgres in -dir

Flags:
`

// runDemo parses volt demo's flags and runs it until ctx ends.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg := DefaultConfig()
	cfg.StorageDir = "./volt-demo"
	cfg.StreamID = "demo"
	fs := flag.NewFlagSet("volt demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage); printFlags(stderr, fs) }
	fs.IntVar(&cfg.Port, "port", cfg.Port, "HTTP port of the page and of volt's API")
	fs.StringVar(&cfg.StorageDir, "dir", cfg.StorageDir, "data directory: shape logs, and the embedded Postgres")
	assets := fs.String("assets", filepath.Join("demo", "dist"), "directory of the built page")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.DatabaseURL = getenv("DATABASE_URL")
	if p := cfg.Validate(); len(p) > 0 {
		return fmt.Errorf("configuration:\n%s", strings.Join(p, "\n"))
	}
	d, err := newDemo(*assets)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, stderr)
	return server.Run(ctx, cfg, log, d.hooks(cfg.Port, log))
}

// demo holds the page's directory and the reject-next switches.
type demo struct {
	assets string
	mu     sync.Mutex
	reject map[string]bool // list → reject its next transaction
}

// newDemo checks that the page is built in dir.
func newDemo(dir string) (*demo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"index.html", "app.js", "pglite.wasm", "pglite.data"} {
		if _, err := os.Stat(filepath.Join(abs, f)); err != nil {
			return nil, fmt.Errorf("the demo page is not built (%s is missing): run `%s` in the repository root, or pass -assets with the directory of a built page", filepath.Join(dir, f), buildHint)
		}
	}
	return &demo{assets: abs, reject: map[string]bool{}}, nil
}

func (d *demo) hooks(port int, log *slog.Logger) server.Hooks {
	return server.Hooks{
		Setup: d.createTables,
		Allow: d.allow,
		Check: d.check,
		Web: func(api http.Handler) http.Handler {
			log.Info("volt demo: open the page in a browser", "url", demoURL(port))
			return d.handler(api)
		},
	}
}

// createTables creates the four lists' tables (idempotent).
func (d *demo) createTables(ctx context.Context, pool *pgxpool.Pool) error {
	for _, list := range demoLists {
		table := demoTable(list)
		if _, err := pool.Exec(ctx, fmt.Sprintf(demoTableSQL, table, table)); err != nil {
			return fmt.Errorf("create demo table %s: %w", table, err)
		}
	}
	return nil
}

// allow is the write endpoint's policy: the four demo tables only, decided
// before any statement runs.
func (d *demo) allow(_ context.Context, _ any, m volt.Mutation) error {
	if _, ok := demoListOf(m.Table); !ok {
		return mutations.Reject(volt.CodeForbidden, "volt demo accepts writes to its four to-do tables only, not %q", m.Table)
	}
	return nil
}

// check runs on each row mutation inside the client transaction, so the
// rejection a list was armed with rolls the whole transaction back, and
// the endpoint records it in volt.receipts as for any other rejection.
func (d *demo) check(_ context.Context, _ any, m volt.Mutation, _, _ map[string]any) error {
	list, _ := demoListOf(m.Table)
	if d.takeReject(list) {
		return mutations.Reject(CodeDemoRejected, "rejected on purpose: the server was asked to reject the %s list's next write (nothing was applied)", list)
	}
	return nil
}

// demoListOf maps a mutation's table ("todos_online" or
// "public.todos_online") to its list.
func demoListOf(table string) (string, bool) {
	list, ok := strings.CutPrefix(strings.TrimPrefix(table, "public."), demoTable(""))
	return list, ok && slices.Contains(demoLists, list)
}

// takeReject reports whether list's next write must be rejected, and
// disarms the switch if so.
func (d *demo) takeReject(list string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	armed := d.reject[list]
	d.reject[list] = false
	return armed
}

// serveRejectNext answers /demo/reject-next: POST ?list=… arms the switch,
// DELETE disarms it, GET reports every list's switch.
func (d *demo) serveRejectNext(w http.ResponseWriter, r *http.Request) {
	list := r.URL.Query().Get("list")
	arm := r.Method == http.MethodPost
	if r.Method != http.MethodGet {
		if !slices.Contains(demoLists, list) {
			demoError(w, http.StatusBadRequest, fmt.Sprintf("unknown list %q: list must be one of %s", list, strings.Join(demoLists, ", ")))
			return
		}
		if !arm && r.Method != http.MethodDelete {
			w.Header().Set("allow", "GET, POST, DELETE")
			demoError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on /demo/reject-next: use GET, POST or DELETE")
			return
		}
	}
	d.mu.Lock()
	if r.Method != http.MethodGet {
		d.reject[list] = arm
	}
	state := map[string]bool{}
	for _, l := range demoLists {
		state[l] = d.reject[l]
	}
	d.mu.Unlock()
	w.Header().Set("content-type", "application/json")
	w.Header().Set("cache-control", "no-store")
	_ = json.NewEncoder(w).Encode(state)
}

// demoError answers with status and a JSON body naming the problem, as
// volt's API does.
func demoError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// handler serves the page, /demo/reject-next and, for every /v1 path, the
// API server's own handler, on the API server's listener.
func (d *demo) handler(api http.Handler) http.Handler {
	files := http.FileServer(http.Dir(d.assets))
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, "/v1/"):
			api.ServeHTTP(rw, r)
		case p == "/demo/reject-next":
			d.serveRejectNext(rw, r)
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			// Revalidate on every load, so a rebuilt page is picked up.
			rw.Header().Set("cache-control", "no-cache")
			files.ServeHTTP(rw, r)
		default:
			demoError(rw, http.StatusNotFound, r.Method+" "+p+" is not a page of volt demo")
		}
	})
}

// demoURL is the page's address for a listener on port.
func demoURL(port int) string { return "http://localhost:" + strconv.Itoa(port) + "/" }
