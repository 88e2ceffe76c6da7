package postgres

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgembed"
	"github.com/voltsync/volt/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var replUpdateCorpus = flag.Bool("update-corpus", false, "write captured pgoutput payloads to testdata/fuzz/FuzzDecode")

const replWait = 30 * time.Second

// replTestHandler hands transactions to the test through a channel. With
// autoDurable it reports every transaction durable as soon as it has it.
type replTestHandler struct {
	txs         chan *volt.Transaction
	autoDurable bool
	durable     atomic.Uint64
}

func newReplTestHandler(autoDurable bool) *replTestHandler {
	return &replTestHandler{txs: make(chan *volt.Transaction, 1000), autoDurable: autoDurable}
}

func (h *replTestHandler) HandleTransaction(ctx context.Context, tx *volt.Transaction) error {
	if h.autoDurable {
		h.durable.Store(max(h.durable.Load(), tx.EndLSN))
	}
	select {
	case h.txs <- tx:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *replTestHandler) DurableLSN() uint64 { return h.durable.Load() }

// next returns the next transaction that has changes (empty ones, which
// Postgres < 15 sends for every transaction, are skipped).
func (h *replTestHandler) next(t *testing.T) *volt.Transaction {
	t.Helper()
	timeout := time.After(replWait)
	for {
		select {
		case tx := <-h.txs:
			if len(tx.Changes) > 0 {
				return tx
			}
		case <-timeout:
			t.Fatalf("no transaction within %v", replWait)
		}
	}
}

// replTestSlot returns a slot name unique to the test (slots are
// cluster-wide, databases are per test).
func replTestSlot(t *testing.T) string {
	s := strings.ToLower(t.Name())
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 50 {
		s = s[:50]
	}
	return "slot_" + s
}

func replQuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// replSetup creates the reader for url, runs Setup and publishes tables.
func replSetup(t *testing.T, url, publication string, tables ...string) *Reader {
	t.Helper()
	ctx := context.Background()
	r := NewReader(ReaderConfig{URL: url, Publication: publication, Slot: replTestSlot(t),
		StatusInterval: 50 * time.Millisecond, Logger: replQuietLogger()})
	if _, err := r.Setup(ctx); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	conn := replConnect(t, url)
	p := NewPublisher(conn, r.cfg.Publication)
	for _, table := range tables {
		if err := p.AddTable(ctx, "public", table); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// replRun runs r with h until the test ends; the returned channel yields
// Run's result.
func replRun(t *testing.T, r *Reader, h Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, h) }()
	var result error
	var stopped bool
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(replWait):
				t.Errorf("Run did not return within %v of cancel", replWait)
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func replConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), replWait)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// replEventually polls cond (database state that has no change
// notification, such as a slot's confirmed_flush_lsn) until it holds.
func replEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(replWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func replSlotFlushLSN(t *testing.T, conn *pgx.Conn, slot string) uint64 {
	t.Helper()
	var lsn pglogrepl.LSN
	if err := conn.QueryRow(context.Background(),
		"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&lsn); err != nil {
		t.Fatalf("read slot %s: %v", slot, err)
	}
	return uint64(lsn)
}

// replTerminateWalsender kills the walsender streaming slot, once the
// reader is streaming.
func replTerminateWalsender(t *testing.T, conn *pgx.Conn, slot string) {
	t.Helper()
	replEventually(t, "the slot to be active", func() bool {
		var killed bool
		err := conn.QueryRow(context.Background(), `SELECT coalesce(bool_or(pg_terminate_backend(active_pid)), false)
			FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		return killed
	})
}

// replExpectRow reads the row of table with the given id as text, under
// the display settings, in the relation's column order. Values are cast
// with ::text, except char(n), whose cast trims the padding that its
// output function (and so pgoutput) keeps.
func replExpectRow(t *testing.T, conn *pgx.Conn, rel *volt.Relation, id string) []volt.Value {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, displaySettings); err != nil {
		t.Fatal(err)
	}
	cols := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		q := pgx.Identifier{c.Name}.Sanitize()
		cols[i] = q + "::text"
		if c.TypeOID == 1042 { // bpchar
			cols[i] = "CASE WHEN " + q + " IS NOT NULL THEN concat(" + q + ") END"
		}
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE id = $1", strings.Join(cols, ", "), pgx.Identifier{rel.Schema, rel.Name}.Sanitize())
	vals := make([]*string, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := conn.QueryRow(ctx, sql, id).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	row := make([]volt.Value, len(vals))
	for i, v := range vals {
		if v == nil {
			row[i] = volt.Value{Null: true}
		} else {
			row[i] = volt.Value{Text: *v}
		}
	}
	return row
}

func replCompareRow(t *testing.T, what string, rel *volt.Relation, got, want []volt.Value) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: column %s = %+v, want %+v", what, rel.Columns[i].Name, got[i], want[i])
		}
	}
}

// replPeekSlot creates a second pgoutput slot, whose raw messages
// replPeek reads without consuming them.
func replPeekSlot(t *testing.T, conn *pgx.Conn, slot string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
		t.Fatal(err)
	}
}

func replPeek(t *testing.T, conn *pgx.Conn, slot, publication string) [][]byte {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', $2)`, slot, pgx.Identifier{publication}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// replDecodeCaptured decodes captured messages with a fresh Decoder and
// returns the transactions that have changes.
func replDecodeCaptured(t *testing.T, msgs [][]byte) []*volt.Transaction {
	t.Helper()
	d := NewDecoder()
	var txs []*volt.Transaction
	for _, m := range msgs {
		tx, err := d.Decode(m)
		if err != nil {
			t.Fatalf("decode captured %q message: %v", m[0], err)
		}
		if tx != nil && len(tx.Changes) > 0 {
			txs = append(txs, tx)
		}
	}
	return txs
}

// replSameTransactions compares transactions, relations by value.
func replSameTransactions(t *testing.T, got, want []*volt.Transaction) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Xid != w.Xid || g.CommitLSN != w.CommitLSN || g.EndLSN != w.EndLSN || !g.CommitTime.Equal(w.CommitTime) || len(g.Changes) != len(w.Changes) {
			t.Fatalf("transaction %d: %+v, want %+v", i, g, w)
		}
		for j := range w.Changes {
			gc, wc := g.Changes[j], w.Changes[j]
			if gc.Kind != wc.Kind || !reflect.DeepEqual(gc.Old, wc.Old) || !reflect.DeepEqual(gc.New, wc.New) ||
				!reflect.DeepEqual(gc.Relation, wc.Relation) || len(gc.Truncated) != len(wc.Truncated) {
				t.Errorf("transaction %d change %d: %+v, want %+v", i, j, gc, wc)
			}
		}
	}
}

// replWriteCorpus stores captured messages as a FuzzDecode seed.
func replWriteCorpus(t *testing.T, name string, msgs [][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(pgoutFrame(msgs...))) + ")\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const replTypesTable = `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE "Types" (
	id int8 PRIMARY KEY,
	i2 int2, i4 int4, num numeric(20, 5), f8 float8, f4 float4,
	"Text Col" text, vc varchar(20), bp char(5), b bool,
	u uuid, ts timestamptz, tsn timestamp, d date, tm time, iv interval,
	j json, jb jsonb, by bytea,
	arr int8[], arr2 int8[][], farr float8[], barr bool[], tarr text[],
	m mood, marr mood[], n text
)`

const replTypesInsert = `INSERT INTO "Types" VALUES
(1, -32768, 2147483647, 12345.678901, 4.5, 1.1,
 'héllo "wörld" ''quoted'' \ back 🎉', 'vc', 'ab', true,
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-01-02 03:04:05.678+02', '2024-02-29 23:59:59.999999', '2024-02-29', '13:14:15', '1 year 2 months 3 days 04:05:06.5',
 '{"foo":  "bar"}', '{"foo": "bar", "n": [1, 2.50]}', '\x0001fffe',
 '{1,2,3}', '{{1,2,3},{4,5,6}}', '{1.2,-3.2,Infinity,-Infinity,NaN}', '{t,f,NULL}', '{"a b","c,d","e\"f",NULL}',
 'happy', '{sad,ok,happy}', NULL),
(2, 0, 0, 'NaN', 'NaN', '-Infinity',
 '', NULL, NULL, false,
 NULL, 'infinity', '-infinity', '0001-01-01 BC', '00:00', '-1 hour',
 'null', '[]', '\x',
 '{}', NULL, '{}', '{}', '{""}',
 'sad', '{}', NULL)`

func TestReaderDecodesTypesLikeTextOutput(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, replTypesTable)
	// A publication name that needs quoting inside publication_names.
	r := replSetup(t, url, `Volt "Pub" 1`, "Types")
	h := newReplTestHandler(true)
	conn := replConnect(t, url)
	replPeekSlot(t, conn, r.cfg.Slot+"_peek")
	replRun(t, r, h)
	var delivered []*volt.Transaction

	pgtest.Exec(t, url, replTypesInsert)
	tx := h.next(t)
	delivered = append(delivered, tx)
	if len(tx.Changes) != 2 {
		t.Fatalf("insert transaction has %d changes, want 2", len(tx.Changes))
	}
	rel := tx.Changes[0].Relation
	if rel.Schema != "public" || rel.Name != "Types" || len(rel.Columns) != 27 || rel.Columns[6].Name != "Text Col" {
		t.Fatalf("relation = %+v", rel)
	}
	for i, c := range rel.Columns {
		if !c.Key {
			t.Errorf("column %s is not part of the (FULL) replica identity", c.Name)
		}
		if c.Name == "b" && c.TypeOID != 16 || c.Name == "num" && c.TypeMod == -1 {
			t.Errorf("column %d = %+v", i, c)
		}
	}
	row1 := replExpectRow(t, conn, rel, "1")
	row2 := replExpectRow(t, conn, rel, "2")
	for i, c := range tx.Changes {
		if c.Kind != volt.ChangeInsert || c.Old != nil {
			t.Errorf("change %d = %v with old %v, want an insert", i, c.Kind, c.Old)
		}
	}
	replCompareRow(t, "insert 1", rel, tx.Changes[0].New, row1)
	replCompareRow(t, "insert 2", rel, tx.Changes[1].New, row2)
	if b := tx.Changes[0].New[rel.ColumnIndex("b")].Text; b != "true" {
		t.Errorf("bool = %q, want true", b)
	}
	if b := tx.Changes[0].New[rel.ColumnIndex("barr")].Text; b != "{t,f,NULL}" {
		t.Errorf("bool[] = %q, want {t,f,NULL}", b)
	}

	pgtest.Exec(t, url, `UPDATE "Types" SET "Text Col" = 'now ''different''', b = NULL, jb = '{"x": 1}', iv = '90 minutes', m = 'ok' WHERE id = 1`)
	tx = h.next(t)
	delivered = append(delivered, tx)
	upd := replExpectRow(t, conn, rel, "1")
	if len(tx.Changes) != 1 || tx.Changes[0].Kind != volt.ChangeUpdate {
		t.Fatalf("update transaction = %+v", tx.Changes)
	}
	replCompareRow(t, "update old", rel, tx.Changes[0].Old, row1)
	replCompareRow(t, "update new", rel, tx.Changes[0].New, upd)

	pgtest.Exec(t, url, `DELETE FROM "Types" WHERE id = 2`)
	tx = h.next(t)
	delivered = append(delivered, tx)
	if len(tx.Changes) != 1 || tx.Changes[0].Kind != volt.ChangeDelete || tx.Changes[0].New != nil {
		t.Fatalf("delete transaction = %+v", tx.Changes)
	}
	replCompareRow(t, "delete old", rel, tx.Changes[0].Old, row2)

	pgtest.Exec(t, url, `TRUNCATE "Types"`)
	tx = h.next(t)
	if len(tx.Changes) != 1 || tx.Changes[0].Kind != volt.ChangeTruncate || len(tx.Changes[0].Truncated) != 1 ||
		tx.Changes[0].Truncated[0].Name != "Types" {
		t.Fatalf("truncate transaction = %+v", tx.Changes)
	}
	delivered = append(delivered, tx)

	// The same WAL, read raw through another slot and decoded by a fresh
	// Decoder, gives the same transactions.
	captured := replPeek(t, conn, r.cfg.Slot+"_peek", r.cfg.Publication)
	replSameTransactions(t, replDecodeCaptured(t, captured), delivered)
	if *replUpdateCorpus {
		replWriteCorpus(t, "captured_types", captured)
	}
}

func TestReaderFillsUnchangedToast(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url,
		`CREATE TABLE toasty (id int PRIMARY KEY, big text, n int)`,
		`ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL`) // stored out of line, uncompressed
	r := replSetup(t, url, "", "toasty")
	h := newReplTestHandler(true)
	conn := replConnect(t, url)
	replRun(t, r, h)

	big := strings.Repeat("0123456789abcdef", 8192) // 128 KiB
	pgtest.Exec(t, url, `INSERT INTO toasty VALUES (1, '`+big+`', 1)`)
	if tx := h.next(t); tx.Changes[0].New[1].Text != big {
		t.Fatalf("inserted big value has %d bytes, want %d", len(tx.Changes[0].New[1].Text), len(big))
	}
	replPeekSlot(t, conn, r.cfg.Slot+"_peek")
	pgtest.Exec(t, url, `UPDATE toasty SET n = n + 1 WHERE id = 1`)
	tx := h.next(t) // the WAL is flushed now, so the peek below sees it too
	// The raw UPDATE carries the big value once (old row), not twice: the
	// new row has it as an unchanged TOAST value.
	var updateSize int
	for _, m := range replPeek(t, conn, r.cfg.Slot+"_peek", r.cfg.Publication) {
		if m[0] == 'U' {
			updateSize = len(m)
		}
	}
	if updateSize == 0 || updateSize > len(big)*3/2 {
		t.Fatalf("raw UPDATE is %d bytes for a %d-byte value: no unchanged TOAST value to test", updateSize, len(big))
	}
	c := tx.Changes[0]
	if c.Kind != volt.ChangeUpdate || c.New[1].Text != big || c.Old[1].Text != big || c.New[2].Text != "2" || c.Old[2].Text != "1" {
		t.Fatalf("update: kind %v, new big %d bytes, old big %d bytes, n %q -> %q",
			c.Kind, len(c.New[1].Text), len(c.Old[1].Text), c.Old[2].Text, c.New[2].Text)
	}
}

func TestReaderXidAndCommitOrder(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	r := replSetup(t, url, "", "items")
	h := newReplTestHandler(true)
	replRun(t, r, h)

	ctx := context.Background()
	conn := replConnect(t, url)
	var xids []uint32
	for i := 0; i < 5; i++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var xid uint32
		if _, err := tx.Exec(ctx, `INSERT INTO items VALUES ($1, 'v'), ($1 + 100, 'w')`, i); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::xid::text::int8`).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		xids = append(xids, xid)
	}
	var prev *volt.Transaction
	for i, xid := range xids {
		tx := h.next(t)
		if tx.Xid != xid {
			t.Errorf("transaction %d: xid %d, want %d", i, tx.Xid, xid)
		}
		if len(tx.Changes) != 2 || tx.Changes[0].New[0].Text != fmt.Sprint(i) {
			t.Errorf("transaction %d: changes %+v", i, tx.Changes)
		}
		if tx.EndLSN <= tx.CommitLSN {
			t.Errorf("transaction %d: EndLSN %d <= CommitLSN %d", i, tx.EndLSN, tx.CommitLSN)
		}
		if since := time.Since(tx.CommitTime); since < -time.Minute || since > time.Minute {
			t.Errorf("transaction %d: commit time %v", i, tx.CommitTime)
		}
		if prev != nil && tx.CommitLSN <= prev.EndLSN {
			t.Errorf("transaction %d: CommitLSN %d not after the previous EndLSN %d", i, tx.CommitLSN, prev.EndLSN)
		}
		prev = tx
	}
	if got := r.LastReceivedLSN(); got < prev.EndLSN {
		t.Errorf("LastReceivedLSN = %d, want >= %d", got, prev.EndLSN)
	}
	if !r.Connected() {
		t.Error("Connected() = false while streaming")
	}
}

func TestReaderRedeliversUntilDurable(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY)`)
	r := replSetup(t, url, "", "items")
	slot := r.cfg.Slot
	conn := replConnect(t, url)

	// A handler that never makes anything durable sees A again after a reconnect.
	lazy := newReplTestHandler(false)
	stop := replRun(t, r, lazy)
	pgtest.Exec(t, url, `INSERT INTO items VALUES (1)`)
	a := lazy.next(t)
	replTerminateWalsender(t, conn, slot)
	if again := lazy.next(t); again.EndLSN != a.EndLSN || again.Xid != a.Xid {
		t.Fatalf("after reconnect got xid %d end %d, want A again (xid %d end %d)", again.Xid, again.EndLSN, a.Xid, a.EndLSN)
	}
	if got := replSlotFlushLSN(t, conn, slot); got >= a.EndLSN {
		t.Fatalf("slot confirmed %d, beyond what the handler made durable (A ends at %d)", got, a.EndLSN)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}

	// A handler that makes A durable: the slot moves past it, and after a
	// reconnect the next transaction is B, not A.
	eager := newReplTestHandler(true)
	replRun(t, r, eager)
	if again := eager.next(t); again.EndLSN != a.EndLSN {
		t.Fatalf("new Run started with end %d, want A (end %d)", again.EndLSN, a.EndLSN)
	}
	replEventually(t, "the slot to confirm A", func() bool { return replSlotFlushLSN(t, conn, slot) >= a.EndLSN })
	if got := r.AckedLSN(); got < a.EndLSN {
		t.Errorf("AckedLSN = %d, want >= %d", got, a.EndLSN)
	}
	replTerminateWalsender(t, conn, slot)
	pgtest.Exec(t, url, `INSERT INTO items VALUES (2)`)
	b := eager.next(t)
	if b.EndLSN == a.EndLSN || b.Changes[0].New[0].Text != "2" {
		t.Fatalf("after reconnect got %+v, want B", b.Changes)
	}
}

func TestReaderAcksWALWithoutPublishedChanges(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY)`, `CREATE TABLE unpublished (id int PRIMARY KEY)`)
	r := replSetup(t, url, "", "items")
	h := newReplTestHandler(true)
	replRun(t, r, h)
	conn := replConnect(t, url)

	pgtest.Exec(t, url, `INSERT INTO items VALUES (1)`)
	a := h.next(t)
	ctx := context.Background()
	// Transactions the publication does not see: one on another table, one
	// that only allocates an xid.
	pgtest.Exec(t, url, `INSERT INTO unpublished SELECT generate_series(1, 100)`,
		`BEGIN; SELECT pg_current_xact_id(); COMMIT`)
	var after pglogrepl.LSN
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if uint64(after) <= a.EndLSN {
		t.Fatalf("WAL did not move: %v <= %d", after, a.EndLSN)
	}
	replEventually(t, "the slot to confirm WAL without published changes", func() bool {
		return replSlotFlushLSN(t, conn, r.cfg.Slot) >= uint64(after)
	})
	select {
	case tx := <-h.txs:
		if len(tx.Changes) != 0 {
			t.Fatalf("unexpected transaction with changes: %+v", tx.Changes)
		}
	default:
	}
}

func TestReaderReconnectsAfterRestart(t *testing.T) {
	c := pgtest.NewCluster(t)
	url := pgtest.NewDBOn(t, c)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY)`)
	r := replSetup(t, url, "", "items")
	h := newReplTestHandler(true)
	replRun(t, r, h)

	pgtest.Exec(t, url, `INSERT INTO items VALUES (1)`)
	a := h.next(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c2, err := c.Restart(ctx, pgembed.Options{NoFsync: true, Logger: replQuietLogger()})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c2.Stop(ctx)
	})
	pgtest.Exec(t, url, `INSERT INTO items VALUES (2)`)
	for {
		tx := h.next(t)
		if tx.EndLSN <= a.EndLSN {
			continue // A again: it may not have been acknowledged before the restart
		}
		if v := tx.Changes[0].New[0].Text; v != "2" {
			t.Fatalf("after restart got id %s, want 2", v)
		}
		break
	}
	replEventually(t, "the reader to report it is connected", r.Connected)
}

func TestSetupIsIdempotent(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx := context.Background()
	r := NewReader(ReaderConfig{URL: url, Slot: replTestSlot(t), Logger: replQuietLogger()})
	for i, want := range []bool{true, false, false} {
		created, err := r.Setup(ctx)
		if err != nil {
			t.Fatalf("Setup %d: %v", i, err)
		}
		if created != want {
			t.Fatalf("Setup %d: created = %v, want %v", i, created, want)
		}
	}
	conn := replConnect(t, url)
	var plugin, typ string
	if err := conn.QueryRow(ctx, `SELECT plugin, slot_type FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&plugin, &typ); err != nil {
		t.Fatal(err)
	}
	if plugin != "pgoutput" || typ != "logical" {
		t.Errorf("slot plugin %q type %q", plugin, typ)
	}
	var ins, upd, del, trunc bool
	if err := conn.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`,
		DefaultPublication).Scan(&ins, &upd, &del, &trunc); err != nil {
		t.Fatal(err)
	}
	if !ins || !upd || !del || !trunc {
		t.Errorf("publication publishes insert=%v update=%v delete=%v truncate=%v", ins, upd, del, trunc)
	}

	// A publication created anew invalidates the slot: it is recreated.
	pgtest.Exec(t, url, `DROP PUBLICATION `+DefaultPublication)
	if created, err := r.Setup(ctx); err != nil || !created {
		t.Fatalf("Setup after the publication was dropped = %v, %v; want a new slot", created, err)
	}
}

func TestRunWithoutSlot(t *testing.T) {
	url := pgtest.NewDB(t)
	r := NewReader(ReaderConfig{URL: url, Slot: replTestSlot(t), Logger: replQuietLogger()})
	ctx, cancel := context.WithTimeout(context.Background(), replWait)
	defer cancel()
	err := r.Run(ctx, newReplTestHandler(true))
	if !errors.Is(err, ErrSlotMissing) || IsRetryable(err) {
		t.Fatalf("Run without a slot = %v, want ErrSlotMissing", err)
	}
}

func TestRunReturnsHandlerError(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY)`)
	r := replSetup(t, url, "", "items")
	boom := errors.New("boom")
	ctx, cancel := context.WithTimeout(context.Background(), replWait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, replFailingHandler{boom}) }()
	pgtest.Exec(t, url, `INSERT INTO items VALUES (1)`)
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the handler's error", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return the handler's error")
	}
}

type replFailingHandler struct{ err error }

func (h replFailingHandler) HandleTransaction(context.Context, *volt.Transaction) error { return h.err }
func (h replFailingHandler) DurableLSN() uint64                                         { return 0 }

func TestRunStopsOnTableWithoutFullIdentity(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	r := replSetup(t, url, "", "items")
	pgtest.Exec(t, url, `ALTER TABLE items REPLICA IDENTITY DEFAULT`, `INSERT INTO items VALUES (1, 'a')`, `UPDATE items SET v = 'b'`)
	ctx, cancel := context.WithTimeout(context.Background(), replWait)
	defer cancel()
	err := r.Run(ctx, newReplTestHandler(true))
	if !errors.Is(err, ErrReplicaIdentityNotFull) || !strings.Contains(err.Error(), `"public"."items"`) {
		t.Fatalf("Run = %v, want a replica identity error naming the table", err)
	}
}

// replSlowHandler blocks in HandleTransaction until release is closed.
type replSlowHandler struct {
	*replTestHandler
	entered chan struct{}
	release chan struct{}
}

func (h *replSlowHandler) HandleTransaction(ctx context.Context, tx *volt.Transaction) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.replTestHandler.HandleTransaction(ctx, tx)
}

func TestReaderSurvivesSlowHandler(t *testing.T) {
	c := pgtest.NewCluster(t)
	url := pgtest.NewDBOn(t, c)
	pgtest.Exec(t, url, `ALTER SYSTEM SET wal_sender_timeout = '1s'`, `SELECT pg_reload_conf()`, `CREATE TABLE items (id int PRIMARY KEY)`)
	conn := replConnect(t, url)
	replEventually(t, "wal_sender_timeout to be 1s", func() bool {
		var v string
		fresh := replConnect(t, url)
		if err := fresh.QueryRow(context.Background(), `SHOW wal_sender_timeout`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v == "1s"
	})
	r := replSetup(t, url, "", "items")
	r.cfg.StatusInterval = DefaultStatusInterval // capped to wal_sender_timeout/3 by the reader
	h := &replSlowHandler{replTestHandler: newReplTestHandler(true), entered: make(chan struct{}, 1), release: make(chan struct{})}
	replRun(t, r, h)

	pgtest.Exec(t, url, `INSERT INTO items VALUES (1)`)
	select {
	case <-h.entered:
	case <-time.After(replWait):
		t.Fatal("the handler was not called")
	}
	var pid int
	if err := conn.QueryRow(context.Background(), `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// Stay in the handler for three times wal_sender_timeout; a reader that
	// went silent meanwhile would be disconnected and get A again.
	<-time.After(3 * time.Second)
	close(h.release)
	a := h.next(t)
	pgtest.Exec(t, url, `INSERT INTO items VALUES (2)`)
	if b := h.next(t); b.EndLSN == a.EndLSN || b.Changes[0].New[0].Text != "2" {
		t.Fatalf("after the slow handler got %+v, want the second insert (the stream was restarted)", b.Changes)
	}
	var pidAfter int
	if err := conn.QueryRow(context.Background(), `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&pidAfter); err != nil {
		t.Fatal(err)
	}
	if pidAfter != pid {
		t.Fatalf("walsender changed from %d to %d: the connection timed out during the slow handler", pid, pidAfter)
	}
}

func TestReaderAcksDurableOnStop(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY)`)
	r := replSetup(t, url, "", "items")
	r.cfg.StatusInterval = time.Hour // capped to wal_sender_timeout/3 = 20s: no periodic status in this test
	h := newReplTestHandler(true)
	stop := replRun(t, r, h)
	conn := replConnect(t, url)
	pgtest.Exec(t, url, `INSERT INTO items VALUES (1)`)
	a := h.next(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for replSlotFlushLSN(t, conn, r.cfg.Slot) < a.EndLSN {
		if time.Now().After(deadline) {
			t.Fatalf("slot confirmed %d after Run stopped, want >= %d", replSlotFlushLSN(t, conn, r.cfg.Slot), a.EndLSN)
		}
		<-time.After(20 * time.Millisecond) // polling the slot: there is no notification
	}
}
