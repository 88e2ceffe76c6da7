package localstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/client/localstore"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/volttest"
)

var voltBin string

func TestMain(m *testing.M) {
	if os.Getenv("LOCALSTORE_HELPER") == "crash" {
		os.Exit(crashChild())
	}
	bin, cleanup := volttest.MustBuild()
	voltBin = bin
	pgtest.Main(m, cleanup)
}

// startVolt runs volt serve on dbURL until the test ends and returns its URL.
func startVolt(t *testing.T, dbURL string) string {
	t.Helper()
	return volttest.Start(t, voltBin, dbURL, "VOLT_INSECURE_WRITES=true").URL
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pgCount(t *testing.T, dbURL, query string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func localCount(t *testing.T, db *localstore.DB, query string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// running starts db.Sync of todos and a Syncer; both stop with the test
// (or with the returned stop function).
func running(t *testing.T, db *localstore.DB, url, table string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := db.Sync(ctx, lsClient(t, url), client.ShapeDef{Table: table}, table)
		if err != nil && ctx.Err() == nil {
			t.Errorf("Sync: %v", err)
		}
	}()
	var hc *http.Client
	if os.Getenv("LS_DEBUG") != "" {
		hc = &http.Client{Transport: logRT{t}}
	}
	var copts []client.Option
	if hc != nil {
		copts = append(copts, client.WithHTTPClient(hc))
	}
	s, err := db.NewSyncer(lsClient(t, url, copts...), localstore.SyncerOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second,
		OnError: func(err error) { t.Logf("syncer: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer wg.Done()
		_ = s.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func update(t *testing.T, db *localstore.DB, stmts ...string) {
	t.Helper()
	err := db.Update(func(tx *localstore.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

const todosDDL = `CREATE TABLE todos (id text PRIMARY KEY, title text, done bool NOT NULL DEFAULT false, n int, meta jsonb)`

func TestThroughTheDatabase(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL, `INSERT INTO todos(id, title) VALUES ('s1', 'from server')`)
	url := startVolt(t, dbURL)
	path := filepath.Join(t.TempDir(), "store.db")
	var mu sync.Mutex
	var rbs []localstore.Rollback
	opts := localstore.Options{OnRollback: func(r localstore.Rollback) { mu.Lock(); rbs = append(rbs, r); mu.Unlock() }}
	db, err := localstore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, db, url, "todos")
	waitFor(t, 30*time.Second, "initial sync", func() bool {
		var n int
		return db.SQL().QueryRow(`SELECT count(*) FROM todos`).Scan(&n) == nil && n == 1
	})

	// a local transaction reaches Postgres, and its overlay goes on echo
	update(t, db, `INSERT INTO todos(id, title, done, meta) VALUES ('l1', 'local', 1, '{"a":[1,2]}')`,
		`UPDATE todos SET title = 'edited' WHERE id = 's1'`)
	waitFor(t, 30*time.Second, "write in Postgres", func() bool {
		return pgCount(t, dbURL, `SELECT count(*) FROM todos WHERE (id = 'l1' AND done AND meta = '{"a":[1,2]}') OR (id = 's1' AND title = 'edited')`) == 2
	})
	waitFor(t, 30*time.Second, "overlay cleared by echo", func() bool {
		return localCount(t, db, `SELECT count(*) FROM todos_local`) == 0
	})
	if n := localCount(t, db, `SELECT count(*) FROM todos_synced WHERE (id = 'l1' AND done = 1) OR (id = 's1' AND title = 'edited')`); n != 2 {
		t.Fatalf("synced rows after echo: %d", n)
	}

	// a rejected transaction is rolled back and reported
	update(t, db, `UPDATE todos SET n = 'not a number' WHERE id = 's1'`)
	waitFor(t, 30*time.Second, "rollback", func() bool { mu.Lock(); defer mu.Unlock(); return len(rbs) == 1 })
	if rbs[0].Code != "invalid" || rbs[0].Seq == 0 || rbs[0].Tables[0] != "todos" {
		t.Fatalf("rollback: %+v", rbs[0])
	}
	if n := localCount(t, db, `SELECT count(*) FROM todos WHERE n IS NULL AND id = 's1'`); n != 1 {
		t.Fatal("rejected value still visible")
	}

	// restart: the shape resumes from the stored offset
	stop()
	var offset string
	if err := db.SQL().QueryRow(`SELECT "offset" FROM _volt_shapes WHERE tbl = 'todos'`).Scan(&offset); err != nil || offset == "-1" {
		t.Fatalf("stored offset %q %v", offset, err)
	}
	db.Close()
	pgtest.Exec(t, dbURL, `INSERT INTO todos(id, title) VALUES ('s2', 'while away')`)
	db, err = localstore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after running's cleanup: Sync must not see a closed store
	running(t, db, url, "todos")
	waitFor(t, 30*time.Second, "resumed sync", func() bool {
		return localCount(t, db, `SELECT count(*) FROM todos`) == 3
	})

	// a must-refetch keeps local changes
	update(t, db, `UPDATE todos SET title = 'pending' WHERE id = 's2'`)
	req, _ := http.NewRequest(http.MethodDelete, url+"/v1/shape?table=todos", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	waitFor(t, 30*time.Second, "after refetch", func() bool {
		return localCount(t, db, `SELECT count(*) FROM todos WHERE id = 's2' AND title = 'pending'`) == 1 &&
			localCount(t, db, `SELECT count(*) FROM todos`) == 3
	})
}

func todosSchema() client.Schema {
	zero := 0
	return client.Schema{"id": {Type: "text", PKIndex: &zero}, "title": {Type: "text"},
		"done": {Type: "bool"}, "n": {Type: "int4"}, "meta": {Type: "jsonb"}}
}

func TestOfflineWritesSync(t *testing.T) {
	n := 10000
	if s := os.Getenv("LS_OFFLINE_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, todosDDL)
	url := startVolt(t, dbURL)
	db, err := localstore.Open(filepath.Join(t.TempDir(), "store.db"), localstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after running's cleanup
	if err := db.Declare("todos", "todos", todosSchema()); err != nil {
		t.Fatal(err)
	}
	// perTx writes per local transaction: the server applies each client
	// transaction in about 1 ms on an idle machine, but in 200 ms on this
	// loaded 2-core one, so 10,000 one-write transactions would take long.
	perTx := 50
	if s := os.Getenv("LS_OFFLINE_PER_TX"); s != "" {
		perTx, _ = strconv.Atoi(s)
	}
	start := time.Now()
	var stmts []string
	for i := 0; i < n; i++ {
		stmt := fmt.Sprintf(`INSERT INTO todos(id, title, n) VALUES ('o%d', 'offline', %d)`, i, i)
		if i%10 == 9 {
			stmt = fmt.Sprintf(`UPDATE todos SET done = 1 WHERE id = 'o%d'`, i-1)
		}
		if stmts = append(stmts, stmt); len(stmts) == perTx || i == n-1 {
			update(t, db, stmts...)
			stmts = nil
		}
	}
	t.Logf("%d offline writes in %v", n, time.Since(start))
	start = time.Now()
	running(t, db, url, "todos")
	waitFor(t, 5*time.Minute, "offline writes in Postgres", func() bool {
		p, _ := db.Pending()
		return p == 0
	})
	t.Logf("synced in %v", time.Since(start))
	want := n - n/10
	if got := pgCount(t, dbURL, `SELECT count(*) FROM todos`); got != want {
		t.Fatalf("Postgres has %d rows, want %d", got, want)
	}
	if got := pgCount(t, dbURL, `SELECT count(*) FROM todos WHERE done`); got != n/10 {
		t.Fatalf("Postgres has %d done rows, want %d", got, n/10)
	}
	waitFor(t, time.Minute, "overlay cleared", func() bool {
		return localCount(t, db, `SELECT count(*) FROM todos_local`) == 0 && localCount(t, db, `SELECT count(*) FROM todos`) == want
	})
}

// crashChild is the helper process: it writes w<start>, w<start+1>, …
// (an insert, and an update of the previous row in the same
// transaction), syncing all the while, until it is killed.
func crashChild() int {
	start, _ := strconv.Atoi(os.Getenv("LS_START"))
	db, err := localstore.Open(os.Getenv("LS_PATH"), localstore.Options{OnRollback: func(r localstore.Rollback) {
		fmt.Printf("rollback %+v\n", r)
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 1
	}
	if err := db.Declare("todos", "todos", todosSchema()); err != nil {
		fmt.Fprintln(os.Stderr, "child declare:", err)
		return 1
	}
	fmt.Println("open")
	url := os.Getenv("LS_URL")
	ctx := context.Background()
	c, _ := client.New(url, client.WithBackoff(10*time.Millisecond, 0))
	go func() {
		_ = db.Sync(ctx, c, client.ShapeDef{Table: "todos"}, "todos")
	}()
	hc := http.DefaultClient
	if os.Getenv("LS_KILL_AFTER_RESPONSE") == "true" {
		hc = &http.Client{Transport: killAfter{http.DefaultTransport}}
	}
	cw, _ := client.New(url, client.WithBackoff(10*time.Millisecond, 0), client.WithHTTPClient(hc))
	s, _ := db.NewSyncer(cw, localstore.SyncerOptions{MinBackoff: 10 * time.Millisecond, MaxBatch: 5})
	go func() { _ = s.Run(ctx) }()
	for k := start; ; k++ {
		err := db.Update(func(tx *localstore.Tx) error {
			if _, err := tx.Exec(`INSERT INTO todos(id, title) VALUES (?, 'x')`, "w"+strconv.Itoa(k)); err != nil {
				return err
			}
			_, err := tx.Exec(`UPDATE todos SET title = 'y' WHERE id = ?`, "w"+strconv.Itoa(k)+"-none")
			return err
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child update:", err)
			return 1
		}
		fmt.Printf("ok w%d\n", k)
		time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
	}
}

// killAfter kills the process, sometimes, once the server has answered a
// write: after the commit, before the answer is recorded.
type killAfter struct{ rt http.RoundTripper }

func (k killAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := k.rt.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost && rand.IntN(4) == 0 {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	return resp, err
}

type logRT struct{ t *testing.T }

func (l logRT) RoundTrip(r *http.Request) (*http.Response, error) {
	st := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(r)
	l.t.Logf("%s %s: %v %v", r.Method, r.URL.Path, time.Since(st), err)
	return resp, err
}
