package shapecache

import (
	"context"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

// TestSubqueryApplyCountsMoves checks that dependency changes are moves
// exactly when a value's count goes 0 → 1 or 1 → 0: inner rows that
// share a value, updates that keep it (also spelled differently: 1 and
// 1.0), and rows outside the subquery's WHERE move nothing.
func TestSubqueryApplyCountsMoves(t *testing.T) {
	outer, _ := evalTable(1)
	inner, rel := evalTable(2)
	tables := func(ref where.TableRef) (where.Table, error) { return whereTable(inner), nil }
	s, err := shape.NewWithSubqueries(shape.Definition{Schema: "public", Table: outer.Name, Where: `n IN (SELECT n FROM ` + inner.Name + ` WHERE n > 0)`}, outer, tables)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Inspector: fixedInspector{inner}}
	st, err := c.newSubqueryState(context.Background(), s, "h")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.deps) != 1 || st.deps[0].inner == nil {
		t.Fatalf("deps %+v: want one evaluable dependency", st.deps)
	}
	key, _ := where.Key(st.deps[0].dep.Types, where.Value{ptr("1")})
	st.deps[0].counts = map[where.ValueKey]int{key: 1} // row id 1 has n = 1
	row := func(id, n string) []volt.Value { return []volt.Value{{Text: id}, {Text: n}} }
	for _, step := range []struct {
		name  string
		ch    volt.Change
		moved bool
	}{
		{"insert of a present value", volt.Change{Kind: volt.ChangeInsert, New: row("5", "1")}, false},
		{"update keeping the value", volt.Change{Kind: volt.ChangeUpdate, Old: row("5", "1"), New: row("5", "1.0")}, false},
		{"delete of one of two", volt.Change{Kind: volt.ChangeDelete, Old: row("5", "1.0")}, false},
		{"insert outside the WHERE", volt.Change{Kind: volt.ChangeInsert, New: row("6", "0")}, false},
		{"insert of a new value", volt.Change{Kind: volt.ChangeInsert, New: row("7", "2")}, true},
		{"delete of the last row of a value", volt.Change{Kind: volt.ChangeDelete, Old: row("1", "1")}, true},
		{"update out of the WHERE", volt.Change{Kind: volt.ChangeUpdate, Old: row("7", "2"), New: row("7", "-2")}, true},
	} {
		ch := step.ch
		ch.Relation = rel
		if got := st.apply(&ch); got != step.moved {
			t.Errorf("%s: moved %v, want %v", step.name, got, step.moved)
		}
	}
}

func ptr(s string) *string { return &s }

type fixedInspector struct{ t *volt.Table }

func (f fixedInspector) Table(ctx context.Context, schema, name string) (*volt.Table, error) {
	return f.t, nil
}
