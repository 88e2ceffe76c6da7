package shape

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/voltsync/volt"
)

func registryTable() *volt.Table {
	return &volt.Table{
		OID: 7, Schema: "public", Name: "items", PrimaryKey: []string{"id"},
		Columns: []volt.Column{
			{Name: "id", TypeOID: 20, TypeName: "int8", TypeMod: -1, NotNull: true, PKIndex: 0},
			{Name: "owner", TypeOID: 23, TypeName: "int4", TypeMod: -1, PKIndex: -1},
			{Name: "title", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
		},
	}
}

// Each Registry interns on its own: nothing is shared through the
// process, so two caches (or a cache opened again) start empty.
func TestRegistriesShareNothing(t *testing.T) {
	var a, b Registry
	ta, tb := registryTable(), registryTable()
	if got := a.InternTable(ta); got != ta {
		t.Fatal("a's first table of a version is not its canonical pointer")
	}
	if got := a.InternTable(registryTable()); got != ta {
		t.Fatal("a equal table is not interned to a's canonical pointer")
	}
	if got := b.InternTable(tb); got != tb {
		t.Fatal("b interned its table to the pointer another registry holds")
	}
	// Shapes built outside a registry share no table state either.
	s1, err := New(Definition{Schema: "public", Table: "items"}, ta)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New(Definition{Schema: "public", Table: "items"}, registryTable())
	if err != nil {
		t.Fatal(err)
	}
	if s1.t == s2.t || s2.Table == ta {
		t.Fatal("New shares table state between shapes")
	}
}

// The shapes of one registry share the state of a table version, whether
// built by it, restored or adopted.
func TestRegistrySharesTableState(t *testing.T) {
	var r Registry
	s1, err := r.New(Definition{Schema: "public", Table: "items", Where: "owner = 1"}, registryTable())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.Restore(Definition{Schema: "public", Table: "items", Where: "owner = 2"}, registryTable(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if s1.t != s2.t || s1.Table != s2.Table {
		t.Fatal("New and Restore on equal tables do not share table state")
	}

	own, err := New(Definition{Schema: "public", Table: "items", Where: "owner = 3", Columns: []string{"id", "title"}}, registryTable())
	if err != nil {
		t.Fatal(err)
	}
	o := r.Own(own)
	if o.t != s1.t || o.Table != s1.Table {
		t.Fatal("Own did not move the shape to the registry's table state")
	}
	if o.Key != own.Key || strings.Join(o.SelectedNames(), ",") != "id,title" || o.Def.Where != "owner = 3" {
		t.Fatalf("Own changed the shape: key %q, columns %v, where %q", o.Key, o.SelectedNames(), o.Def.Where)
	}
	f, err := o.Filter()
	if err != nil || f == nil || f.SQL() != mustFilter(t, own).SQL() {
		t.Fatalf("Own lost the where clause: %v %v", f, err)
	}
	if r.Own(o) != o || r.Own(s1) != s1 {
		t.Fatal("Own copied a shape already on the registry's state")
	}
}

func mustFilter(t *testing.T, s *Shape) interface{ SQL() string } {
	t.Helper()
	f, err := s.Filter()
	if err != nil || f == nil {
		t.Fatalf("filter: %v %v", f, err)
	}
	return f
}

// Handles from one registry are distinct and their times increase, even
// when many are made at once (many in one microsecond).
func TestRegistryHandlesUniqueAndMonotonic(t *testing.T) {
	var r Registry
	s, err := r.New(Definition{Schema: "public", Table: "items"}, registryTable())
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 500
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prev int64
			for range each {
				h := r.NewHandle(s)
				us, err := strconv.ParseInt(h[strings.IndexByte(h, '-')+1:], 10, 64)
				if err != nil {
					t.Errorf("handle %q: %v", h, err)
					return
				}
				if us <= prev {
					t.Errorf("handle %q not after the previous one (%d)", h, prev)
					return
				}
				prev = us
				mu.Lock()
				if seen[h] {
					t.Errorf("handle %q handed out twice", h)
				}
				seen[h] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d distinct handles, want %d", len(seen), workers*each)
	}
}
