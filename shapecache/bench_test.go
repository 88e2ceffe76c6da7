package shapecache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

// benchTable is items(id int8 primary key, owner_id int4, title text).
var benchTable = &volt.Table{
	OID: 4242, Schema: "public", Name: "items", PrimaryKey: []string{"id"},
	Columns: []volt.Column{
		{Name: "id", TypeOID: 20, TypeName: "int8", TypeMod: -1, NotNull: true, PKIndex: 0},
		{Name: "owner_id", TypeOID: 23, TypeName: "int4", TypeMod: -1, PKIndex: -1},
		{Name: "title", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
	},
}

var benchRelation = &volt.Relation{
	ID: 4242, Schema: "public", Name: "items",
	Columns: []volt.RelationColumn{{Name: "id", TypeOID: 20, TypeMod: -1}, {Name: "owner_id", TypeOID: 23, TypeMod: -1}, {Name: "title", TypeOID: 25, TypeMod: -1}},
}

// benchCache builds a cache holding n idle shapes "owner_id = k" plus 10
// shapes routing cannot index, all with complete snapshots, without
// Postgres: the shapes are registered directly. Only the shape for owner
// 7 has a log on disk (the benchmark's change touches only it).
func benchCache(b *testing.B, n int) *Cache {
	b.Helper()
	store, err := shapelog.OpenStore(b.TempDir(), shapelog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := &Cache{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Compaction: Compaction{MinOps: -1}}
	if err := c.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	add := func(where string, withLog bool) {
		s, err := c.shapes.New(shape.Definition{Schema: "public", Table: "items", Where: where}, benchTable)
		if err != nil {
			b.Fatal(err)
		}
		e := newEntry(c, c.shapes.NewHandle(s), s)
		e.snap = &postgres.SnapshotInfo{Snapshot: volt.Snapshot{Xmin: 1, Xmax: 1}, LSN: 1}
		close(e.ready)
		if withLog {
			l, err := store.Create(e.Handle)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.FinishSnapshot([]byte(`{"headers":{"control":"snapshot-end"}}`)); err != nil {
				b.Fatal(err)
			}
			e.setLog(l)
		}
		c.mu.Lock()
		c.register(e)
		c.mu.Unlock()
	}
	for k := 0; k < n; k++ {
		add("owner_id = "+strconv.Itoa(k), k == 7)
	}
	for k := 0; k < 10; k++ {
		add(fmt.Sprintf("title ILIKE 'x%d%%'", k), false)
	}
	return c
}

// BenchmarkHandleTransaction measures the cost of one replicated update
// that matters to one shape among n idle "owner_id = k" shapes (plus 10
// unindexable ones). Routing makes it independent of n: compare the ns/op
// of shapes=100 and shapes=100000 (the target is within 2×).
func BenchmarkHandleTransaction(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("shapes=%d", n), func(b *testing.B) {
			c := benchCache(b, n)
			tx := &volt.Transaction{Xid: 100}
			ch := volt.Change{Kind: volt.ChangeUpdate, Relation: benchRelation,
				Old: []volt.Value{{Text: "1"}, {Text: "7"}, {Text: "a"}},
				New: []volt.Value{{Text: "1"}, {Text: "7"}, {Text: "b"}}}
			tx.Changes = []volt.Change{ch}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx.CommitLSN = uint64(1000 + i)
				tx.EndLSN = tx.CommitLSN + 1
				tx.Xid++
				if err := c.HandleTransaction(context.Background(), tx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIdleShapeMemory reports the heap bytes one idle shape costs
// (registry, routing index, compiled where clause; its log closed). It
// measures once, in the first invocation, whatever b.N is (later
// invocations would count the caches of earlier ones); ns/op means
// nothing here.
func BenchmarkIdleShapeMemory(b *testing.B) {
	idleShapeBytes.Do(func() {
		const n = 20_000
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := benchCache(b, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		idleShapeBytesPer = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		runtime.KeepAlive(c)
	})
	b.ReportMetric(idleShapeBytesPer, "bytes/shape")
}

var (
	idleShapeBytes    sync.Once
	idleShapeBytesPer float64
)

// BenchmarkRestore times Open on a catalog of 100,000 shapes "owner_id =
// k" (the restart path: catalog decode, shapes rebuilt without parsing,
// routing index from stored terms). The files are not needed: logs are
// opened on first use.
func BenchmarkRestore(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	store, err := shapelog.OpenStore(dir, shapelog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cat, _, err := loadCatalog(dir + "/" + catalogFile)
	if err != nil {
		b.Fatal(err)
	}
	var reg shape.Registry
	for k := 0; k < n; k++ {
		s, err := reg.New(shape.Definition{Schema: "public", Table: "items", Where: "owner_id = " + strconv.Itoa(k)}, benchTable)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := s.Filter()
		terms, ok := f.IndexTerms()
		cat.add(&catalogRecord{Handle: reg.NewHandle(s), Table: s.Table, Definition: &s.Def, Key: s.Key,
			Snapshot: &postgres.SnapshotInfo{Snapshot: volt.Snapshot{Xmin: 10, Xmax: 12, Xip: []uint64{11}}, LSN: 1 << 30}, Terms: terms, Indexed: ok})
	}
	if err := cat.close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &Cache{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := c.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		if c.Len() != n {
			b.Fatalf("restored %d shapes", c.Len())
		}
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restart")
}
