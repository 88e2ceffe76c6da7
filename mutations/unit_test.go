package mutations

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/voltsync/volt"
)

func TestPgText(t *testing.T) {
	text := &column{name: "t", cast: "text"}
	arr := &column{name: "a", cast: "text[]", array: true}
	doc := &column{name: "j", cast: "jsonb", document: true}
	cases := []struct {
		c    *column
		in   any
		want any
	}{
		{text, nil, nil},
		{text, "x", "x"},
		{text, json.Number("12345678901234567890.5"), "12345678901234567890.5"},
		{text, true, "true"},
		{arr, []any{"a", nil, `b"\`, json.Number("1"), []any{}}, `{"a",NULL,"b\"\\","1",{}}`},
		{arr, "{1,2}", "{1,2}"},
		{doc, map[string]any{"k": []any{json.Number("1.50")}}, `{"k":[1.50]}`},
		{doc, "s", `"s"`},
		{doc, []any{}, `[]`},
	}
	for _, c := range cases {
		got, err := pgText(c.c, c.in)
		if err != nil || got != c.want {
			t.Errorf("pgText(%s, %#v) = %#v, %v; want %#v", c.c.cast, c.in, got, err, c.want)
		}
	}
	for _, bad := range []any{map[string]any{}, []any{1}} {
		if _, err := pgText(text, bad); err == nil {
			t.Errorf("pgText(text, %#v) accepted", bad)
		}
	}
	deep := []any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{}}}}}}}}
	if _, err := pgText(arr, deep); err == nil {
		t.Error("an array deeper than Postgres allows was accepted")
	}
}

func TestClean(t *testing.T) {
	if got := clean("a\x00b\xff"); got != "a\uFFFDb\uFFFD" {
		t.Errorf("clean = %q", got)
	}
	long := clean(strings.Repeat("é", 2000))
	if len(long) > 1010 || !strings.HasSuffix(long, "…") {
		t.Errorf("long message not cut: %d bytes", len(long))
	}
}

func op(qualified, kind string, ids ...string) *rowOp {
	schema, name, _ := strings.Cut(qualified, ".")
	return &rowOp{m: volt.Mutation{Op: kind, Table: qualified}, t: &table{schema: schema, name: name}, ids: ids}
}

func order(ops []*rowOp, fks []fkEdge) string {
	var out []string
	for _, o := range orderRows(ops, fks) {
		out = append(out, o.m.Op[:3]+" "+o.t.name+" "+strings.Join(o.ids, ","))
	}
	return strings.Join(out, "; ")
}

func TestOrderRows(t *testing.T) {
	fks := []fkEdge{{child: "p.items", parent: "p.lists"}, {child: "p.notes", parent: "p.items"}, {child: "p.tags", parent: "p.lists", deferrable: true}}
	cases := []struct {
		ops  []*rowOp
		want string
	}{
		{[]*rowOp{op("p.notes", "insert", "n1"), op("p.items", "insert", "i1"), op("p.lists", "insert", "l1")},
			"ins lists l1; ins items i1; ins notes n1"},
		{[]*rowOp{op("p.lists", "delete", "l1"), op("p.notes", "delete", "n1"), op("p.items", "delete", "i1")},
			"del notes n1; del items i1; del lists l1"},
		// Deferrable keys are left alone.
		{[]*rowOp{op("p.tags", "insert", "t1"), op("p.lists", "insert", "l1")}, "ins tags t1; ins lists l1"},
		// A child moves away before its old parent goes; the new parent comes first.
		{[]*rowOp{op("p.lists", "delete", "l1"), op("p.items", "update", "i1"), op("p.lists", "insert", "l2")},
			"ins lists l2; upd items i1; del lists l1"},
		// Same row keeps its order.
		{[]*rowOp{op("p.items", "insert", "i1"), op("p.items", "update", "i1"), op("p.lists", "insert", "l1")},
			"ins lists l1; ins items i1; upd items i1"},
		// Unrelated tables keep the client's order.
		{[]*rowOp{op("p.x", "insert", "x1"), op("p.y", "delete", "y1")}, "ins x x1; del y y1"},
	}
	for i, c := range cases {
		if got := order(c.ops, fks); got != c.want {
			t.Errorf("case %d: %s, want %s", i, got, c.want)
		}
	}
}
