package where

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"testing"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func val(ss ...any) Value {
	v := make(Value, len(ss))
	for i, s := range ss {
		if s != nil {
			v[i] = ptr(s.(string))
		}
	}
	return v
}

func TestSlotHash(t *testing.T) {
	// subqueries.md §4.1's worked value.
	if got := SlotHash("stk3833821-1724230000000000", []string{"parent_id"}, val("1")); got != "86fb229dca95071b3746877cee4cfa73" {
		t.Errorf("SlotHash = %s", got)
	}
	if got, want := SlotHash("p", []string{"x"}, val(nil)), md5hex("pNULL"); got != want {
		t.Errorf("NULL: %s, want %s", got, want)
	}
	// Electric's composite input.
	if got, want := SlotHash("", []string{"user_id", "team_id"}, val("2", "2")), md5hex("user_id:v:2team_id:v:2"); got != want {
		t.Errorf("composite: %s, want %s", got, want)
	}
	if got, want := SlotHash("p", []string{"a", "b"}, val(nil, "x y")), md5hex("pa:NULLb:v:x y"); got != want {
		t.Errorf("composite with NULL: %s, want %s", got, want)
	}
}

func TestTags(t *testing.T) {
	h := func(v string) string { return SlotHash("stk", []string{"x"}, val(v)) }
	row := MapRow{"x": ptr("1"), "y": ptr("2"), "z": ptr("5"), "flag": ptr("t"), "name": ptr("a")}
	tests := []struct {
		clause string
		want   []string
	}{
		{"x IN (SELECT id FROM parent)", []string{h("1")}},
		{"x IN (SELECT id FROM parent) OR flag", []string{h("1") + "/", "/1"}},
		{"x IN (SELECT id FROM parent) AND name = 'a'", []string{h("1") + "/1"}},
		{"x IN (SELECT id FROM parent) AND (y IN (SELECT value FROM parent) OR z = 5)",
			[]string{h("1") + "/" + SlotHash("stk", []string{"y"}, val("2")) + "//", "//" + h("1") + "/1"}},
		// Tags do not depend on whether the literals hold.
		{"x NOT IN (SELECT id FROM parent) OR name = 'b'", []string{h("1") + "/", "/1"}},
		{"name = 'b'", []string{"1"}},
	}
	for _, tt := range tests {
		p, err := sqParse(tt.clause, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Tags(row, "stk"); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Tags of %q\n  got  %q\n  want %q", tt.clause, got, tt.want)
		}
	}
}

func TestViewIn(t *testing.T) {
	one := func(typ string, members ...any) *View {
		v := NewView([]Type{{Name: typ}})
		for _, m := range members {
			if err := v.Add(val(m)); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}
	tests := []struct {
		view *View
		val  Value
		want Truth
	}{
		{one("int4", "1", "2"), val("2"), True},
		{one("int4", "1", "2"), val("3"), False},
		{one("int4", "1", "2"), val(nil), Unknown},
		{one("int4"), val(nil), False}, // NULL IN (empty) is false
		{one("int4", "1", nil), val("1"), True},
		{one("int4", "1", nil), val("3"), Unknown},
		{one("int4", nil), val(nil), Unknown},
		{one("numeric", "1.50"), val("1.5"), True},
		{one("float8", "-0"), val("0"), True},
		{one("float8", "NaN"), val("NaN"), True},
		{one("bpchar", "ab  "), val("ab"), True},
		{one("interval", "1 day"), val("24:00:00"), True},
		{one("timestamptz", "2024-01-01 10:00:00+02"), val("2024-01-01 08:00:00+00"), True},
		{one("uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), val("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), True},
		{one("text", "a"), val("A"), False},
		{one("bool", "t"), val("true"), True},
	}
	for i, tt := range tests {
		got, err := tt.view.In(tt.val)
		if err != nil || got != tt.want {
			t.Errorf("case %d: In(%v) = %v, %v; want %v", i, tt.val, got, err, tt.want)
		}
	}
	// Row comparisons: a NULL on either side makes a candidate unknown
	// unless another column differs.
	pair := NewView([]Type{tInt4, tInt4})
	for _, m := range []Value{val("1", nil), val("3", "4")} {
		if err := pair.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		val  Value
		want Truth
	}{
		{val("3", "4"), True},
		{val("1", "2"), Unknown},
		{val("2", "2"), False},
		{val("3", nil), Unknown},
		{val("5", nil), False},
		{val(nil, "9"), Unknown},
		{val(nil, nil), Unknown},
	} {
		if got, err := pair.In(c.val); err != nil || got != c.want {
			t.Errorf("pair In(%v) = %v, %v; want %v", c.val, got, err, c.want)
		}
	}
	if err := pair.Remove(val("1", nil)); err != nil || pair.Len() != 1 {
		t.Fatalf("Remove: %v, Len %d", err, pair.Len())
	}
	if got, _ := pair.In(val("1", "2")); got != False {
		t.Errorf("after Remove: %v", got)
	}
	if got := fmt.Sprint(pair.Arrays()[1][0] != nil && *pair.Arrays()[1][0] == "4"); got != "true" {
		t.Errorf("Arrays %v", pair.Arrays())
	}
	if _, err := pair.In(val("x", "1")); err == nil {
		t.Errorf("In of a malformed value succeeded")
	}
	if err := pair.Add(val("1")); err == nil {
		t.Errorf("Add of a value of the wrong width succeeded")
	}
}

func TestMeta(t *testing.T) {
	// subqueries.md §1.5: parent_id IN (…) OR include_child = true.
	p, err := sqParse("parent_id IN (SELECT id FROM parent WHERE include_parent = true) OR include_child = true", nil)
	if err != nil {
		t.Fatal(err)
	}
	view := NewView(p.Deps[0].Types)
	if err := view.Add(val("1")); err != nil {
		t.Fatal(err)
	}
	h := func(v string) string { return SlotHash("stk", []string{"parent_id"}, val(v)) }
	tests := []struct {
		row   MapRow
		tags  []string
		conds string
		in    bool
	}{
		{MapRow{"parent_id": ptr("1"), "include_child": ptr("f")}, []string{h("1") + "/", "/1"}, "[true false]", true},
		{MapRow{"parent_id": ptr("2"), "include_child": ptr("t")}, []string{h("2") + "/", "/1"}, "[false true]", true},
		{MapRow{"parent_id": ptr("2"), "include_child": nil}, []string{h("2") + "/", "/1"}, "[false false]", false},
		{MapRow{"parent_id": nil, "include_child": ptr("t")}, []string{SlotHash("stk", []string{"parent_id"}, val(nil)) + "/", "/1"}, "[false true]", true},
	}
	for _, tt := range tests {
		m, err := p.Meta(tt.row, []*View{view}, "stk")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(m.Tags) != fmt.Sprint(tt.tags) || fmt.Sprint(m.ActiveConditions) != tt.conds || m.Included != tt.in {
			t.Errorf("Meta(%v) = %+v; want tags %q conditions %s included %v", tt.row, m, tt.tags, tt.conds, tt.in)
		}
	}
	// Negated: NULL (unknown) is false after NOT, as in SQL.
	p, err = sqParse("NOT (a = 7 OR parent_id IN (SELECT id FROM parent))", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		row   MapRow
		view  []Value
		conds string
	}{
		{MapRow{"a": ptr("1"), "parent_id": ptr("2")}, []Value{val("1")}, "[true true]"},
		{MapRow{"a": ptr("1"), "parent_id": ptr("1")}, []Value{val("1")}, "[true false]"},
		{MapRow{"a": nil, "parent_id": ptr("2")}, []Value{val("1")}, "[false true]"},
		{MapRow{"a": ptr("1"), "parent_id": nil}, []Value{val("1")}, "[true false]"},
		{MapRow{"a": ptr("1"), "parent_id": nil}, nil, "[true true]"},                     // NULL NOT IN (empty) is true
		{MapRow{"a": ptr("1"), "parent_id": ptr("2")}, []Value{val(nil)}, "[true false]"}, // 2 NOT IN (NULL) is NULL
	} {
		v := NewView(p.Deps[0].Types)
		for _, x := range c.view {
			if err := v.Add(x); err != nil {
				t.Fatal(err)
			}
		}
		conds, err := p.ActiveConditions(c.row, []*View{v})
		if err != nil || fmt.Sprint(conds) != c.conds {
			t.Errorf("ActiveConditions(%v, %v) = %v, %v; want %s", c.row, c.view, conds, err, c.conds)
		}
	}
	// An evaluation error is returned with its position false.
	p, err = sqParse("parent_id IN (SELECT id FROM parent) OR 10 / a > 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	conds, err := p.ActiveConditions(MapRow{"parent_id": ptr("1"), "a": ptr("0")}, []*View{view})
	if err == nil || fmt.Sprint(conds) != "[true false]" || !p.Includes(conds) {
		t.Errorf("division by zero: %v, %v", conds, err)
	}
	if _, err := p.ActiveConditions(MapRow{}, nil); err == nil {
		t.Errorf("ActiveConditions without views succeeded")
	}
}

// TestSlotHashRowComparisonUnambiguous: a row comparison's parts are
// concatenated, so with texts holding "b:v:" two different tuples gave
// one input ("a:v:1b:v:2b:v:3") and one slot: a move-out of one took the
// other's rows out of clients. Texts with ':' are length-prefixed; the
// others keep Electric's input.
func TestSlotHashRowComparisonUnambiguous(t *testing.T) {
	cols := []string{"a", "b"}
	if x, y := SlotHash("p", cols, val("1b:v:2", "3")), SlotHash("p", cols, val("1", "2b:v:3")); x == y {
		t.Errorf("(1b:v:2, 3) and (1, 2b:v:3) share slot %s", x)
	}
	if got, want := SlotHash("p", cols, val("1:2", nil)), md5hex("pa:L3:1:2b:NULL"); got != want {
		t.Errorf("(1:2, NULL): %s, want %s", got, want)
	}
	if got, want := SlotHash("p", []string{"a"}, val("1:2")), md5hex("pv:1:2"); got != want {
		t.Errorf("one column: %s, want %s (not ambiguous: unchanged)", got, want)
	}
}
