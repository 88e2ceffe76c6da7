package shape

import (
	"errors"
	"strings"
	"testing"

	"github.com/voltsync/volt"
)

func queryableTable() *volt.Table {
	return &volt.Table{OID: 7, Schema: "public", Name: "people", PrimaryKey: []string{"id"}, Columns: []volt.Column{
		{Name: "id", TypeName: "int4", PKIndex: 0},
		{Name: "name", TypeName: "text", PKIndex: -1},
		{Name: "ssn", TypeName: "text", PKIndex: -1},
		{Name: "total", TypeName: "int4", PKIndex: -1, Generated: true},
	}}
}

// TestQueryableColumns: queryable_columns is the projection by default,
// bounds columns, subset where and order_by (not the shape's own where,
// which the same trusted party sets), needs the key, and is part of the
// shape's key (in any order).
func TestQueryableColumns(t *testing.T) {
	tbl := queryableTable()
	def := Definition{Schema: "public", Table: "people", Queryable: []string{"name", "id", "total"}}
	s, err := New(def, tbl)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.SelectedNames(), ","); got != "id,name" {
		t.Errorf("projection %s; want id,name (generated columns are not synced)", got)
	}
	plain, _ := New(Definition{Schema: "public", Table: "people", Columns: []string{"name", "id"}}, tbl)
	other, _ := New(Definition{Schema: "public", Table: "people", Queryable: []string{"id", "name", "ssn"}, Columns: []string{"id", "name"}}, tbl)
	same, _ := New(Definition{Schema: "public", Table: "people", Queryable: []string{"total", "id", "name"}}, tbl)
	if s.Key == plain.Key || s.Key == other.Key || s.Key != same.Key {
		t.Errorf("keys: %q, plain %q, other list %q, same list reordered %q", s.Key, plain.Key, other.Key, same.Key)
	}
	for _, c := range []struct {
		def   Definition
		field string
	}{
		{Definition{Queryable: []string{"name"}}, "queryable_columns"},
		{Definition{Queryable: []string{"id", "nope"}}, "queryable_columns"},
		{Definition{Queryable: []string{"id", "name"}, Columns: []string{"id", "ssn"}}, "columns"},
	} {
		c.def.Schema, c.def.Table = "public", "people"
		_, err := New(c.def, tbl)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v; want an error under %s", c.def, err, c.field)
		}
	}
	if _, err := New(Definition{Schema: "public", Table: "people", Queryable: []string{"id", "name"}, Where: "ssn = 'x'"}, tbl); err != nil {
		t.Errorf("the shape's own where on a column outside the list: %v", err)
	}
	if _, err := s.CompileWhere("ssn = 'x'", nil, def.Queryable); err == nil || !strings.Contains(err.Error(), "ssn") {
		t.Errorf("subset where on ssn: %v", err)
	}
	if _, err := s.CompileWhere("name = 'x' AND total > 1", nil, def.Queryable); err != nil {
		t.Errorf("subset where within the list: %v", err)
	}
	if _, err := s.ParseOrderBy("ssn", def.Queryable); err == nil {
		t.Error("order_by ssn accepted")
	}
	if ob, err := s.ParseOrderBy("name DESC, id", def.Queryable); err != nil || ob != `"name" DESC, "id"` {
		t.Errorf("order_by within the list: %q %v", ob, err)
	}
	// A restored shape projects the same columns and keeps the list (the
	// catalog stores both), so its subsets stay limited to it.
	var reg Registry
	r, err := reg.Restore(s.Def, tbl, s.Key)
	if err != nil || strings.Join(r.SelectedNames(), ",") != "id,name" {
		t.Errorf("restored: %v %v", r.SelectedNames(), err)
	}
	if _, err := r.CompileWhere("ssn = 'x'", nil, r.Def.Queryable); err == nil {
		t.Error("a restored shape's subset may filter on a column outside queryable_columns")
	}
}
