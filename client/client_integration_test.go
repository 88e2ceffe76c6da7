package client_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/volttest"
)

var voltBin string

func TestMain(m *testing.M) {
	bin, cleanup := volttest.MustBuild()
	voltBin = bin
	pgtest.Main(m, cleanup)
}

// voltServer is a running volt serve process.
type voltServer struct{ *volttest.Server }

func startVolt(t *testing.T, dbURL string) *voltServer {
	t.Helper()
	return &voltServer{volttest.Start(t, voltBin, dbURL, "VOLT_CHUNK_BYTES=2000", "VOLT_INSECURE_WRITES=true")}
}

func (v *voltServer) start() { v.Restart() }
func (v *voltServer) stop()  { v.Stop() }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, dbURL string) *pgx.Conn {
	conn, err := pgx.Connect(ctxT(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// write runs stmts in one transaction and returns its 32-bit xid.
func write(t *testing.T, conn *pgx.Conn, stmts ...string) uint32 {
	t.Helper()
	ctx := ctxT(t)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	var xid string
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::xid::text`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(xid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

const itemsDDL = `CREATE TABLE items (id int PRIMARY KEY, title text, n numeric, done bool, tags text[], at timestamptz)`

// runShape runs sh until the test ends.
func runShape(t *testing.T, sh *client.Shape) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// checkItems compares the shape's rows with the items table.
func checkItems(t *testing.T, conn *pgx.Conn, sh *client.Shape) {
	t.Helper()
	rows, err := conn.Query(ctxT(t), `SELECT id, coalesce(title, '<null>'), n::text, done, array_to_string(tags, '|'), at FROM items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for rows.Next() {
		var id int32
		var title, n, tags string
		var done bool
		var at time.Time
		if err := rows.Scan(&id, &title, &n, &done, &tags, &at); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprint(id)] = fmt.Sprintf("%s %s %v %s %s", title, n, done, tags, at.UTC().Format(time.RFC3339Nano))
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	got := map[string]string{}
	for _, r := range sh.Rows() {
		title, _ := r["title"].(string)
		if r["title"] == nil {
			title = "<null>"
		}
		var tags []string
		for _, tag := range r["tags"].([]any) {
			if tag != nil { // array_to_string skips NULLs
				tags = append(tags, tag.(string))
			}
		}
		got[fmt.Sprint(r["id"].(int32))] = fmt.Sprintf("%s %s %v %s %s", title, r["n"].(client.Decimal), r["done"].(bool),
			strings.Join(tags, "|"), r["at"].(time.Time).Format(time.RFC3339Nano))
	}
	if len(got) != len(want) {
		t.Fatalf("shape has %d rows, Postgres %d", len(got), len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("row %s: shape %q, Postgres %q", id, got[id], w)
		}
	}
}

func seedItems(t *testing.T, dbURL string, n int) {
	pgtest.Exec(t, dbURL, itemsDDL, fmt.Sprintf(`INSERT INTO items
		SELECT i, 'title ' || i || repeat('x', 40), i * 1.25, i %% 2 = 0, ARRAY['a', 'b "' || i || '"', NULL::text]::text[] , '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 second'
		FROM generate_series(1, %d) i`, n))
}

// newClient returns a Client of url that retries quickly.
func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	c, err := client.New(url, append([]client.Option{client.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newShape(t *testing.T, c *client.Client, def client.ShapeDef, opts ...client.ShapeOption) *client.Shape {
	sh, err := c.Shape(def, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

func TestIntegrationSyncAndAwaitTxid(t *testing.T) {
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprintf("sse=%v", sse), func(t *testing.T) {
			dbURL := pgtest.NewDB(t)
			seedItems(t, dbURL, 200) // several 2000-byte chunks
			v := startVolt(t, dbURL)
			conn := connect(t, dbURL)
			ctx := ctxT(t)

			var sopts []client.ShapeOption
			if sse {
				sopts = append(sopts, client.LiveSSE())
			}
			c := newClient(t, v.URL)
			sh := newShape(t, c, client.ShapeDef{Table: "items"}, sopts...)
			var batches atomic.Int32
			sh.Subscribe(func(client.ShapeChange) { batches.Add(1) })
			runShape(t, sh)
			if err := sh.WaitUpToDate(ctx); err != nil {
				t.Fatal(err)
			}
			if n := batches.Load(); n < 3 {
				t.Errorf("initial sync in %d batches; want chunked catch-up", n)
			}
			checkItems(t, conn, sh)

			xid := write(t, conn,
				`INSERT INTO items VALUES (1000, 'new', 3.14159265358979323846, true, '{x}', now())`,
				`UPDATE items SET title = NULL, n = n + 1 WHERE id <= 5`,
				`DELETE FROM items WHERE id BETWEEN 10 AND 19`)
			if err := sh.AwaitTxid(ctx, xid); err != nil {
				t.Fatal(err)
			}
			checkItems(t, conn, sh)
			if r, _ := sh.Get(`"public"."items"/"1000"`); r["n"] != client.Decimal("3.14159265358979323846") {
				t.Errorf("numeric lost precision: %v", r["n"])
			}
			// A write made before the shape existed is visible through the
			// snapshot-end of the initial sync.
			xid2 := write(t, conn, `INSERT INTO items VALUES (2000, 'other', 1, false, '{}', now())`)
			sh2 := newShape(t, c, client.ShapeDef{Table: "items", Where: "id = $1", Params: []string{"2000"}})
			runShape(t, sh2)
			if err := sh2.AwaitTxid(ctx, xid2); err != nil {
				t.Fatal(err)
			}
			if sh2.Len() != 1 {
				t.Errorf("filtered shape has %d rows", sh2.Len())
			}
		})
	}
}

func TestIntegrationMustRefetchAfterDelete(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	seedItems(t, dbURL, 20)
	v := startVolt(t, dbURL)
	conn := connect(t, dbURL)
	ctx := ctxT(t)

	sh := newShape(t, newClient(t, v.URL), client.ShapeDef{Table: "items"})
	refetched := make(chan struct{})
	resynced := make(chan struct{})
	var seenRefetch bool
	sh.Subscribe(func(sc client.ShapeChange) {
		switch {
		case sc.MustRefetch:
			seenRefetch = true
			close(refetched)
		case seenRefetch && sc.UpToDate:
			seenRefetch = false
			close(resynced)
		}
	})
	runShape(t, sh)
	if err := sh.WaitUpToDate(ctx); err != nil {
		t.Fatal(err)
	}
	old := sh.Stream().Handle()
	req, _ := http.NewRequest(http.MethodDelete, v.URL+"/v1/shape?handle="+old, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	xid := write(t, conn, `INSERT INTO items VALUES (500, 'after delete', 1, true, '{}', now())`)
	for _, ch := range []chan struct{}{refetched, resynced} {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("no must-refetch and re-sync")
		}
	}
	if h := sh.Stream().Handle(); h == old || h == "" {
		t.Errorf("handle %q after must-refetch (was %q)", h, old)
	}
	if err := sh.AwaitTxid(ctx, xid); err != nil {
		t.Fatal(err)
	}
	checkItems(t, conn, sh)
}

func TestIntegrationServerRestart(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	seedItems(t, dbURL, 20)
	v := startVolt(t, dbURL)
	conn := connect(t, dbURL)
	ctx := ctxT(t)

	sh := newShape(t, newClient(t, v.URL), client.ShapeDef{Table: "items"})
	var refetches atomic.Int32
	sh.Subscribe(func(sc client.ShapeChange) {
		if sc.MustRefetch {
			refetches.Add(1)
		}
	})
	runShape(t, sh)
	if err := sh.WaitUpToDate(ctx); err != nil {
		t.Fatal(err)
	}
	xid := write(t, conn, `INSERT INTO items VALUES (100, 'before restart', 1, true, '{}', now())`)
	if err := sh.AwaitTxid(ctx, xid); err != nil {
		t.Fatal(err)
	}
	handle := sh.Stream().Handle()

	v.stop() // the live request fails; the stream retries
	xid = write(t, conn, `INSERT INTO items VALUES (101, 'while down', 2, false, '{}', now())`,
		`UPDATE items SET title = 'changed while down' WHERE id = 1`)
	v.start()
	if err := sh.AwaitTxid(ctx, xid); err != nil {
		t.Fatal(err)
	}
	if h := sh.Stream().Handle(); h != handle || refetches.Load() != 0 {
		t.Errorf("handle %q after restart (was %q), %d must-refetches", h, handle, refetches.Load())
	}
	checkItems(t, conn, sh)
}

func TestIntegrationAwaitReceipt(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	pgtest.Exec(t, dbURL, itemsDDL)
	v := startVolt(t, dbURL) // volt serve creates volt.receipts at start (mutations.Migrate)
	conn := connect(t, dbURL)
	ctx := ctxT(t)
	c := newClient(t, v.URL)

	receipts, err := c.ReceiptShape("c1")
	if err != nil {
		t.Fatal(err)
	}
	runShape(t, receipts)
	items := newShape(t, c, client.ShapeDef{Table: "items"})
	runShape(t, items)
	if err := items.WaitUpToDate(ctx); err != nil {
		t.Fatal(err)
	}

	// What the write endpoint does: the client's writes and its receipt
	// in one transaction.
	write(t, conn, `INSERT INTO items VALUES (1, 'mine', 1, true, '{}', now())`,
		`INSERT INTO volt.receipts (client_id, seq, status, txid, xid8)
		 VALUES ('c1', 1, 'accepted', pg_current_xact_id()::xid::text::bigint, pg_current_xact_id()::text)`)
	write(t, conn, `INSERT INTO volt.receipts (client_id, seq, status, code, message) VALUES ('c1', 2, 'rejected', 'conflict', 'row changed')`,
		`INSERT INTO volt.receipts (client_id, seq, status) VALUES ('c2', 2, 'accepted')`)

	r, err := receipts.AwaitReceipt(ctx, "c1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "accepted" || r.Txid == 0 || r.Xid8 == "" {
		t.Fatalf("receipt 1: %+v", r)
	}
	// The receipt's txid finds the write in other shapes.
	if err := items.AwaitTxid(ctx, r.Txid); err != nil {
		t.Fatal(err)
	}
	if _, ok := items.Get(`"public"."items"/"1"`); !ok {
		t.Error("the accepted write is not in the items shape")
	}
	r, err = c.AwaitReceipt(ctx, "c1", 2)
	if err != nil || r.Status != "rejected" || r.Code != "conflict" || r.Message != "row changed" {
		t.Fatalf("receipt 2: %+v, %v", r, err)
	}
	for _, row := range receipts.Rows() {
		if row["client_id"] != "c1" {
			t.Errorf("receipt of another client: %v", row)
		}
	}
}
