package routing

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/where"
)

// benchColumns is the benchmark's table.
var benchColumns = []where.Column{
	{Name: "id", Type: "int8"},
	{Name: "owner_id", Type: "int4"},
	{Name: "title", Type: "text"},
}

// benchShape stands for the cache's entry: what is routed, and the clause
// the cache then evaluates.
type benchShape struct{ f *where.Expr }

// benchRow is a replicated row as the cache's shapes read it.
type benchRow struct {
	rel  *volt.Relation
	vals []volt.Value
}

func (r *benchRow) Value(col string) (string, bool) { return value(r.rel, r.vals, col) }

// benchIndex is one size's index, built once: the benchmark function runs
// several times per size and 100,000 parses take seconds.
type benchIndex struct {
	ix            Index[*benchShape]
	bytesPerShape float64
}

var (
	benchIndexes = map[int]*benchIndex{}
)

// buildBenchIndex adds n shapes owner_id = k and 10 unindexable shapes
// to an index, measuring the index's heap use per shape (the parsed
// clauses are made first and not counted).
func buildBenchIndex(tb testing.TB, n int) *benchIndex {
	if bi := benchIndexes[n]; bi != nil {
		return bi
	}
	shapes := make([]*benchShape, 0, n+10)
	for k := 0; k < n; k++ {
		shapes = append(shapes, &benchShape{f: mustParseCols(tb, fmt.Sprintf("owner_id = %d", k))})
	}
	for k := 0; k < 10; k++ {
		shapes = append(shapes, &benchShape{f: mustParseCols(tb, fmt.Sprintf("title ILIKE 'x%d%%'", k))})
	}
	bi := &benchIndex{}
	before := heapAlloc()
	for _, s := range shapes {
		bi.ix.Add(s, 1, s.f)
	}
	bi.bytesPerShape = float64(heapAlloc()-before) / float64(len(shapes))
	benchIndexes[n] = bi
	return bi
}

func mustParseCols(tb testing.TB, clause string) *where.Expr {
	e, err := where.Parse(clause, benchColumns, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func heapAlloc() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// router routes changes through one benchmark index and evaluates the
// candidates' clauses on the old and new row, as the shape cache would.
type router struct {
	bi       *benchIndex
	owners   []string
	old, new *benchRow
	ch       volt.Change
	matches  int
	eval     func(*benchShape)
}

func newRouter(bi *benchIndex, rel *volt.Relation, n int) *router {
	r := &router{bi: bi, owners: make([]string, n)}
	for k := range r.owners {
		r.owners[k] = strconv.Itoa(k)
	}
	r.old = &benchRow{rel: rel, vals: []volt.Value{{Text: "1"}, {}, {Text: "before"}}}
	r.new = &benchRow{rel: rel, vals: []volt.Value{{Text: "1"}, {}, {Text: "after"}}}
	r.ch = volt.Change{Kind: volt.ChangeUpdate, Relation: rel, Old: r.old.vals, New: r.new.vals}
	r.eval = func(s *benchShape) {
		if m, _ := s.f.Matches(r.old); m {
			r.matches++
		}
		if m, _ := s.f.Matches(r.new); m {
			r.matches++
		}
	}
	return r
}

// route routes the i-th change: owner_id stays a, the title changes.
func (r *router) route(i int) {
	a := r.owners[i%len(r.owners)]
	r.old.vals[1].Text, r.new.vals[1].Text = a, a
	r.bi.ix.MatchChange(&r.ch, r.eval)
}

// interleavedRatio times alternating batches of changes through two
// routers and returns the median ratio of a large batch's time to the
// adjacent small batch's: alternating, and the median, keep a busy
// machine's drift and hiccups out of the comparison.
func interleavedRatio(large, small *router) float64 {
	const rounds, batch = 41, 200
	timeBatch := func(r *router, round int) time.Duration {
		start := time.Now()
		for i := 0; i < batch; i++ {
			r.route(round*batch + i)
		}
		return time.Since(start)
	}
	ratios := make([]float64, rounds)
	for round := range ratios {
		var tl, ts time.Duration
		if round%2 == 0 {
			ts = timeBatch(small, round)
			tl = timeBatch(large, round)
		} else {
			tl = timeBatch(large, round)
			ts = timeBatch(small, round)
		}
		ratios[round] = float64(tl) / float64(ts)
	}
	slices.Sort(ratios)
	return ratios[rounds/2]
}

func benchRelation() *volt.Relation {
	rel := &volt.Relation{ID: 1, Schema: "public", Name: "items"}
	for _, c := range benchColumns {
		rel.Columns = append(rel.Columns, volt.RelationColumn{Name: c.Name})
	}
	return rel
}

// BenchmarkRoute routes one update (owner_id unchanged, title changed)
// through an index of N shapes owner_id = k plus 10 unindexable ones and
// evaluates the candidates, as the shape cache would. The per-change cost
// should not depend on N: shapes=10000 and shapes=100000 also report
// their cost relative to shapes=100 (the ×100 metric, measured by
// alternating batches of both; the goal is under 2).
func BenchmarkRoute(b *testing.B) {
	rel := benchRelation()
	for _, n := range []int{100, 10000, 100000} {
		b.Run("shapes="+strconv.Itoa(n), func(b *testing.B) {
			r := newRouter(buildBenchIndex(b, n), rel, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.route(i)
			}
			b.StopTimer()
			if r.matches != 2*b.N {
				b.Fatalf("%d matches in %d changes, want 2 per change", r.matches, b.N)
			}
			b.ReportMetric(r.bi.bytesPerShape, "bytes/shape")
			if n != 100 {
				small := newRouter(buildBenchIndex(b, 100), rel, 100)
				b.ReportMetric(interleavedRatio(r, small), "×100")
			}
		})
	}
}

// BenchmarkMatch is BenchmarkRoute without evaluating the candidates: the
// cost of the index itself.
func BenchmarkMatch(b *testing.B) {
	rel := benchRelation()
	for _, n := range []int{100, 10000, 100000} {
		b.Run("shapes="+strconv.Itoa(n), func(b *testing.B) {
			bi := buildBenchIndex(b, n)
			ch := volt.Change{Kind: volt.ChangeUpdate, Relation: rel,
				Old: []volt.Value{{Text: "1"}, {}, {Text: "before"}}, New: []volt.Value{{Text: "1"}, {}, {Text: "after"}}}
			owners := make([]string, n)
			for k := range owners {
				owners[k] = strconv.Itoa(k)
			}
			candidates := 0
			count := func(*benchShape) { candidates++ }
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a := owners[i%n]
				ch.Old[1].Text, ch.New[1].Text = a, a
				bi.ix.MatchChange(&ch, count)
			}
			if candidates != 11*b.N {
				b.Fatalf("%d candidates in %d changes, want 11 per change", candidates, b.N)
			}
		})
	}
}
