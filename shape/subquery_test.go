package shape

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/where"
)

func sqChildTable() (*volt.Table, *volt.Relation) {
	t := &volt.Table{OID: 11, Schema: "public", Name: "child", PrimaryKey: []string{"id"}, Columns: []volt.Column{
		{Name: "id", TypeOID: 23, TypeName: "int4", TypeMod: -1, PKIndex: 0},
		{Name: "parent_id", TypeOID: 23, TypeName: "int4", TypeMod: -1, PKIndex: -1},
		{Name: "value", TypeOID: 23, TypeName: "int4", TypeMod: -1, PKIndex: -1},
	}}
	r := &volt.Relation{ID: 11, Schema: "public", Name: "child", Columns: []volt.RelationColumn{
		{Name: "id", TypeOID: 23, TypeMod: -1}, {Name: "parent_id", TypeOID: 23, TypeMod: -1}, {Name: "value", TypeOID: 23, TypeMod: -1}}}
	return t, r
}

func sqParentTables(ref where.TableRef) (where.Table, error) {
	return where.Table{Schema: "public", Name: "parent", Columns: []where.Column{{Name: "id", Type: "int4"}, {Name: "value", Type: "int4"}}}, nil
}

// TestConvertWithViews checks subqueries.md §6's table on
// `parent_id IN (SELECT id FROM parent WHERE value = 1)` with the view
// {1, 2}: inserts and deletes carry tags and active_conditions, updates
// also removed_tags (always), an update is emitted even when only an
// unselected column changed (key only), a row leaving or entering is a
// delete or insert, and with upsert an update is a whole-row insert.
func TestConvertWithViews(t *testing.T) {
	tbl, rel := sqChildTable()
	s, err := NewWithSubqueries(Definition{Schema: "public", Table: "child", Where: "parent_id IN (SELECT id FROM parent WHERE value = 1)", Columns: []string{"id", "value"}}, tbl, sqParentTables)
	if err != nil {
		t.Fatal(err)
	}
	if s.Plan() == nil || !s.Def.Subqueries {
		t.Fatal("no plan")
	}
	if _, err := s.Filter(); err == nil {
		t.Fatal("Filter of a subquery shape must fail (its clause is Plan)")
	}
	view := where.NewView([]where.Type{{Name: "int4"}})
	for _, v := range []string{"1", "2"} {
		if err := view.Add(where.Value{&v}); err != nil {
			t.Fatal(err)
		}
	}
	views := []*where.View{view}
	row := func(id, p, v string) []volt.Value { return []volt.Value{{Text: id}, {Text: p}, {Text: v}} }
	h := func(p string) string { return where.SlotHash("pfx", []string{"parent_id"}, where.Value{&p}) }
	type msg struct {
		Key     string            `json:"key"`
		Value   map[string]string `json:"value"`
		Headers struct {
			Operation        string   `json:"operation"`
			Tags             []string `json:"tags"`
			RemovedTags      []string `json:"removed_tags"`
			ActiveConditions []bool   `json:"active_conditions"`
		} `json:"headers"`
		Raw string `json:"-"`
	}
	conv := func(ch volt.Change, upsert bool) []msg {
		t.Helper()
		ch.Relation = rel
		ms, err := s.ConvertWithViews(&ch, 0, views, "pfx", upsert)
		if err != nil {
			t.Fatal(err)
		}
		var out []msg
		for _, m := range ms {
			b := s.Frame(m, 100, 7, true)
			var x msg
			if err := json.Unmarshal(b, &x); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			x.Raw = string(b)
			out = append(out, x)
		}
		return out
	}
	check := func(name string, got []msg, ops []string, check func([]msg) error) {
		t.Helper()
		var gotOps []string
		for _, m := range got {
			gotOps = append(gotOps, m.Headers.Operation)
		}
		if !slices.Equal(gotOps, ops) {
			t.Errorf("%s: operations %q, want %q (%v)", name, gotOps, ops, got)
			return
		}
		if check != nil {
			if err := check(got); err != nil {
				t.Errorf("%s: %v (%v)", name, err, got)
			}
		}
	}
	check("insert in", conv(volt.Change{Kind: volt.ChangeInsert, New: row("1", "1", "10")}, false), []string{"insert"}, func(m []msg) error {
		if !slices.Equal(m[0].Headers.Tags, []string{h("1")}) || !slices.Equal(m[0].Headers.ActiveConditions, []bool{true}) || m[0].Headers.RemovedTags != nil {
			return fmt.Errorf("headers")
		}
		return nil
	})
	check("insert out", conv(volt.Change{Kind: volt.ChangeInsert, New: row("1", "3", "10")}, false), nil, nil)
	check("insert NULL", conv(volt.Change{Kind: volt.ChangeInsert, New: []volt.Value{{Text: "1"}, {Null: true}, {Text: "1"}}}, false), nil, nil)
	check("delete in", conv(volt.Change{Kind: volt.ChangeDelete, Old: row("1", "2", "10")}, false), []string{"delete"}, func(m []msg) error {
		if !slices.Equal(m[0].Headers.Tags, []string{h("2")}) {
			return fmt.Errorf("tags")
		}
		return nil
	})
	check("update moving between values", conv(volt.Change{Kind: volt.ChangeUpdate, Old: row("1", "1", "10"), New: row("1", "2", "10")}, false), []string{"update"}, func(m []msg) error {
		if !slices.Equal(m[0].Headers.Tags, []string{h("2")}) || !slices.Equal(m[0].Headers.RemovedTags, []string{h("1")}) {
			return fmt.Errorf("tags")
		}
		if _, ok := m[0].Value["value"]; ok || m[0].Value["id"] != "1" {
			return fmt.Errorf("value %v: want the key only (parent_id is not selected)", m[0].Value)
		}
		return nil
	})
	check("update of a selected column", conv(volt.Change{Kind: volt.ChangeUpdate, Old: row("1", "1", "10"), New: row("1", "1", "11")}, false), []string{"update"}, func(m []msg) error {
		if m[0].Headers.RemovedTags == nil || len(m[0].Headers.RemovedTags) != 0 || m[0].Value["value"] != "11" {
			return fmt.Errorf("want removed_tags [] and the new value")
		}
		return nil
	})
	check("update out", conv(volt.Change{Kind: volt.ChangeUpdate, Old: row("1", "1", "10"), New: row("1", "3", "10")}, false), []string{"delete"}, nil)
	check("update in", conv(volt.Change{Kind: volt.ChangeUpdate, Old: row("1", "3", "10"), New: row("1", "1", "10")}, false), []string{"insert"}, nil)
	check("update of the key", conv(volt.Change{Kind: volt.ChangeUpdate, Old: row("1", "1", "10"), New: row("2", "2", "10")}, false), []string{"delete", "insert"}, func(m []msg) error {
		if !slices.Equal(m[0].Headers.Tags, []string{h("2"), h("1")}) || !slices.Equal(m[1].Headers.Tags, []string{h("2")}) {
			return fmt.Errorf("tags")
		}
		return nil
	})
	check("upsert", conv(volt.Change{Kind: volt.ChangeUpdate, Old: row("1", "1", "10"), New: row("1", "2", "10")}, true), []string{"insert"}, func(m []msg) error {
		if m[0].Value["value"] != "10" || !slices.Equal(m[0].Headers.RemovedTags, []string{h("1")}) {
			return fmt.Errorf("want the whole row and removed_tags")
		}
		return nil
	})
}
