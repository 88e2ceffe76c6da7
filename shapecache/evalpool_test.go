package shapecache

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

// evalTable returns table oid's definition, t<oid>(id int8 primary key,
// n numeric), and its relation message.
func evalTable(oid uint32) (*volt.Table, *volt.Relation) {
	name := "t" + string(rune('a'+oid%26))
	t := &volt.Table{OID: oid, Schema: "public", Name: name, PrimaryKey: []string{"id"},
		Columns: []volt.Column{
			{Name: "id", TypeOID: 20, TypeName: "int8", TypeMod: -1, NotNull: true, PKIndex: 0},
			{Name: "n", TypeOID: 1700, TypeName: "numeric", TypeMod: -1, PKIndex: -1},
		}}
	r := &volt.Relation{ID: oid, Schema: "public", Name: name,
		Columns: []volt.RelationColumn{{Name: "id", TypeOID: 20, TypeMod: -1}, {Name: "n", TypeOID: 1700, TypeMod: -1}}}
	return t, r
}

// evalCache opens a cache without Postgres; evalShape registers shapes
// with complete snapshots directly (as benchCache does).
func evalCache(t *testing.T) *Cache {
	t.Helper()
	store, err := shapelog.OpenStore(t.TempDir(), shapelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Compaction: Compaction{MinOps: -1}}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func evalShape(t *testing.T, c *Cache, table *volt.Table, where string) *Entry {
	t.Helper()
	s, err := c.shapes.New(shape.Definition{Schema: table.Schema, Table: table.Name, Where: where}, table)
	if err != nil {
		t.Fatal(err)
	}
	e := newEntry(c, c.shapes.NewHandle(s), s)
	e.snap = &postgres.SnapshotInfo{Snapshot: volt.Snapshot{Xmin: 1, Xmax: 1}, LSN: 1}
	close(e.ready)
	l, err := c.Store.Create(e.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishSnapshot([]byte(`{"headers":{"control":"snapshot-end"}}`)); err != nil {
		t.Fatal(err)
	}
	e.setLog(l)
	c.mu.Lock()
	c.register(e)
	c.mu.Unlock()
	return e
}

func evalInsert(rel *volt.Relation, lsn uint64, id, n string) *volt.Transaction {
	return &volt.Transaction{Xid: uint32(lsn), CommitLSN: lsn, EndLSN: lsn + 1, Changes: []volt.Change{{
		Kind: volt.ChangeInsert, Relation: rel, New: []volt.Value{{Text: id}, {Text: n}},
	}}}
}

// waitLSN waits (on the shape's Changed channel) until e's log holds the
// transaction committed at lsn.
func waitLSN(t *testing.T, e *Entry, lsn uint64, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		ch := e.Changed()
		if e.LastTxLSN() >= lsn {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("%s: not in the log after 10 s (last %d, want %d)", what, e.LastTxLSN(), lsn)
		}
	}
}

// A table whose shape cannot make progress (here: its log is held) does
// not hold up another table's shapes, and DurableLSN stays behind the
// stuck transaction until it is appended. Before the evaluation pool,
// HandleTransaction appended in line and the second table waited.
func TestSlowTableDoesNotHoldUpOthers(t *testing.T) {
	c := evalCache(t)
	ta, ra := evalTable(1)
	tb, rb := evalTable(2)
	slow := evalShape(t, c, ta, "n > 0")
	fast := evalShape(t, c, tb, "n > 0")

	slow.writeMu.Lock() // the slow table's append waits for this
	release := sync.OnceFunc(slow.writeMu.Unlock)
	t.Cleanup(release) // before Close, which syncs the log
	handed := make(chan error, 1)
	go func() {
		ctx := context.Background()
		if err := c.HandleTransaction(ctx, evalInsert(ra, 100, "1", "5")); err != nil {
			handed <- err
			return
		}
		handed <- c.HandleTransaction(ctx, evalInsert(rb, 200, "1", "5"))
	}()
	waitLSN(t, fast, 200, "the other table's insert")
	if err := <-handed; err != nil {
		t.Fatal(err)
	}
	c.flush()
	if d := c.DurableLSN(); d >= 101 {
		t.Fatalf("DurableLSN %d passed the transaction (end 101) that is not appended yet", d)
	}
	if p := c.LastProcessedLSN(); p >= 100 {
		t.Fatalf("LastProcessedLSN %d counts the transaction at 100 that is not appended yet", p)
	}
	release()
	waitLSN(t, slow, 100, "the slow table's insert")
	if err := poll(func() bool { c.flush(); return c.DurableLSN() == 201 }); err != nil {
		t.Fatalf("DurableLSN %d, want 201 once both are appended", c.DurableLSN())
	}
	if p := c.LastProcessedLSN(); p != 200 {
		t.Fatalf("LastProcessedLSN %d, want 200", p)
	}
}

// A shape whose where clause is too costly on a row is removed (its
// clients get 409); the table's other shapes and later transactions carry
// on, each shape's entries in commit order.
func TestCostlyShapeIsRemoved(t *testing.T) {
	c := evalCache(t)
	ta, ra := evalTable(3)
	costly := evalShape(t, c, ta, "(n + 0.5) ^ 30000 > 0")
	plain := evalShape(t, c, ta, "n > 0")
	ctx := context.Background()
	for i, n := range []string{"0.5", "0.6", "10", "7"} {
		if err := c.HandleTransaction(ctx, evalInsert(ra, uint64(100*(i+1)), string(rune('1'+i)), n)); err != nil {
			t.Fatal(err)
		}
	}
	waitLSN(t, plain, 400, "the last insert")
	select {
	case <-costly.Gone():
	case <-time.After(10 * time.Second):
		t.Fatal("the shape whose clause is too costly on n = 10 was not removed")
	}
	if plain.IsGone() {
		t.Fatal("the other shape was removed too")
	}
	res, err := plain.Read(volt.SnapshotEnd)
	if err != nil {
		t.Fatal(err)
	}
	var lsns []string
	for _, m := range res.Entries {
		var msg struct {
			Headers struct{ LSN string }
		}
		if err := json.Unmarshal(m, &msg); err != nil {
			t.Fatal(err)
		}
		lsns = append(lsns, msg.Headers.LSN)
	}
	if got, want := strings.Join(lsns, " "), "100 200 300 400"; got != want {
		t.Fatalf("the other shape's entries have LSNs %s, want %s", got, want)
	}
}
