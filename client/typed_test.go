package client

import (
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

type typedBase struct {
	ID int64 `db:"id"`
}

type typedRow struct {
	typedBase
	Title    string         // untagged: column "title"
	Done     bool           `db:"done"`
	Price    float64        `db:"price"`
	Exact    Decimal        `db:"price_exact"`
	Count    uint16         `db:"n"`
	Note     *string        `db:"note"`
	Owner    sql.NullString `db:"owner"`
	Score    sql.NullInt64  `db:"score"`
	Tags     []string       `db:"tags"`
	Meta     struct{ A int }
	Raw      json.RawMessage `db:"raw"`
	Skipped  chan int        `db:"-"`
	internal int
}

func typedFullRow() Row {
	return Row{
		"id": int64(7), "title": "tea", "done": true, "price": Decimal("2.50"), "price_exact": Decimal("2.50"),
		"n": int32(12), "note": nil, "owner": "ann", "score": nil, "tags": []any{"a", "b"},
		"meta": json.RawMessage(`{"A": 3}`), "raw": json.RawMessage(`[1]`), "extra": "a column without a field",
	}
}

func TestScanRowTags(t *testing.T) {
	var got typedRow
	if err := ScanRow(typedFullRow(), &got); err != nil {
		t.Fatal(err)
	}
	want := typedRow{typedBase: typedBase{ID: 7}, Title: "tea", Done: true, Price: 2.5, Exact: "2.50", Count: 12,
		Owner: sql.NullString{String: "ann", Valid: true}, Tags: []string{"a", "b"}, Meta: struct{ A int }{3},
		Raw: json.RawMessage(`[1]`)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// NULL into a pointer and a sql.Null type; a value into a pointer.
	row := typedFullRow()
	row["note"], row["owner"], row["score"] = "hi", nil, int32(5)
	got = typedRow{Owner: sql.NullString{String: "old", Valid: true}}
	if err := ScanRow(row, &got); err != nil {
		t.Fatal(err)
	}
	if got.Note == nil || *got.Note != "hi" || got.Owner.Valid || got.Score != (sql.NullInt64{Int64: 5, Valid: true}) {
		t.Fatalf("note %v, owner %+v, score %+v", got.Note, got.Owner, got.Score)
	}
}

func TestScanRowMismatches(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(Row)
		want   string // in the error
		sentry bool   // wraps ErrTypeMismatch
	}{
		{"text into int", func(r Row) { r["id"] = "seven" }, `column "id" into field typedRow.ID (int64)`, true},
		{"NULL into bool", func(r Row) { r["done"] = nil }, `column "done" into field typedRow.Done (bool): value does not fit the field: NULL; use a pointer or a sql.Null type`, true},
		{"overflow", func(r Row) { r["n"] = int32(70000) }, `column "n" into field typedRow.Count (uint16): value does not fit the field: 70000 overflows it`, true},
		{"negative into uint", func(r Row) { r["n"] = int32(-1) }, `typedRow.Count`, true},
		{"bool into string", func(r Row) { r["title"] = true }, `column "title" into field typedRow.Title (string): value does not fit the field: bool value true`, true},
		{"array element", func(r Row) { r["tags"] = []any{"a", nil} }, `typedRow.Tags ([]string): element 1`, true},
		{"bad json", func(r Row) { r["meta"] = json.RawMessage(`{"A": "x"}`) }, `typedRow.Meta`, true},
		{"missing column", func(r Row) { delete(r, "done") }, `field typedRow.Done: no column "done" in the row`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := typedFullRow()
			tc.change(row)
			var got typedRow
			err := ScanRow(row, &got)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrTypeMismatch) != tc.sentry {
				t.Fatalf("error %v, want one containing %q (ErrTypeMismatch: %v)", err, tc.want, tc.sentry)
			}
		})
	}
}

func TestScanRowBadTargets(t *testing.T) {
	var n int
	if err := ScanRow(Row{}, &n); err == nil || !strings.Contains(err.Error(), "structs") {
		t.Errorf("into *int: %v", err)
	}
	if err := ScanRow(Row{}, typedRow{}); err == nil || !strings.Contains(err.Error(), "pointer") {
		t.Errorf("into a struct value: %v", err)
	}
	type dup struct {
		A string `db:"x"`
		B string `db:"x"`
	}
	if err := ScanRow(Row{"x": "1"}, &dup{}); err == nil || !strings.Contains(err.Error(), `both take column "x"`) {
		t.Errorf("two fields of one column: %v", err)
	}
}

type typedItem struct {
	ID    int32  `db:"id"`
	Title string `db:"title"`
	When  *time.Time
}

func typedShape(t *testing.T) *TypedShape[typedItem] {
	c, err := New("http://volt.test")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ShapeOf[typedItem](c, ShapeDef{Table: "items"})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func typedIDs(ts *TypedShape[typedItem]) (keys []string, titles []string) {
	for k, it := range ts.All() {
		keys = append(keys, k)
		titles = append(titles, it.Title)
	}
	return keys, titles
}

func TestTypedShapeFollowsChanges(t *testing.T) {
	ts := typedShape(t)
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	err := ts.apply(Batch{Events: []Event{
		&Change{Key: "a", Operation: volt.OpInsert, Value: Row{"id": int32(1), "title": "tea", "when": nil}},
		&Change{Key: "b", Operation: volt.OpInsert, Value: Row{"id": int32(2), "title": "cake", "when": when}},
		&Change{Key: "a", Operation: volt.OpUpdate, Value: Row{"id": int32(1), "title": "green tea"}}, // key and changed column only
		&UpToDate{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	keys, titles := typedIDs(ts)
	if !reflect.DeepEqual(keys, []string{"a", "b"}) || !reflect.DeepEqual(titles, []string{"green tea", "cake"}) {
		t.Fatalf("rows %v %v", keys, titles)
	}
	if b, ok := ts.Get("b"); !ok || b.When == nil || !b.When.Equal(when) {
		t.Fatalf("b = %+v", b)
	}
	// The map form stays.
	if row, ok := ts.Shape.Get("a"); !ok || row["title"] != "green tea" {
		t.Fatalf("map row %v", row)
	}
	// Breaking out of All stops it; the loop body may call the shape.
	n := 0
	for range ts.All() {
		n++
		_ = ts.Len()
		break
	}
	if n != 1 {
		t.Fatalf("%d iterations after break", n)
	}

	if err := ts.apply(Batch{Events: []Event{&Change{Key: "a", Operation: volt.OpDelete, Value: Row{"id": int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ts.Get("a"); ok || len(ts.Rows()) != 1 {
		t.Fatalf("a still there after its delete: %+v", ts.Rows())
	}
	if err := ts.apply(Batch{Events: []Event{&MustRefetch{Handle: "h2"}}}); err != nil {
		t.Fatal(err)
	}
	if len(ts.Rows()) != 0 {
		t.Fatalf("rows after a must-refetch: %+v", ts.Rows())
	}
}

func TestTypedShapeMismatchStopsRun(t *testing.T) {
	ts := typedShape(t)
	err := ts.apply(Batch{Events: []Event{
		&Change{Key: "a", Operation: volt.OpInsert, Value: Row{"id": "one", "title": "tea", "when": nil}},
	}})
	if !errors.Is(err, ErrTypeMismatch) || !strings.Contains(err.Error(), `row a: client: column "id" into field typedItem.ID (int32)`) {
		t.Fatalf("apply: %v", err)
	}
}

func TestTypedShapeMoveOut(t *testing.T) {
	ts := typedShape(t)
	ins := func(key string, id int32, tag string) *Change {
		return &Change{Key: key, Operation: volt.OpInsert, Value: Row{"id": id, "title": key, "when": nil},
			Tags: []string{tag}, ActiveConditions: []bool{true}}
	}
	if err := ts.apply(Batch{Events: []Event{ins("a", 1, "p1"), ins("b", 2, "p2"), &UpToDate{}}}); err != nil {
		t.Fatal(err)
	}
	if err := ts.apply(Batch{Events: []Event{&Move{Kind: MoveOut, Patterns: []MovePattern{{Pos: 0, Value: "p1"}}}, &UpToDate{}}}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := typedIDs(ts); !reflect.DeepEqual(keys, []string{"b"}) {
		t.Fatalf("rows after the move-out %v, want [b]", keys)
	}
	if _, ok := ts.Get("a"); ok || len(ts.Rows()) != 1 {
		t.Fatalf("typed row a after the move-out: %v, rows %+v", ok, ts.Rows())
	}
	if err := ts.apply(Batch{Events: []Event{&Move{Kind: MoveIn, Patterns: []MovePattern{{Pos: 0, Value: "p1"}}}, ins("a", 1, "p1"), &UpToDate{}}}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := typedIDs(ts); !reflect.DeepEqual(keys, []string{"a", "b"}) {
		t.Fatalf("rows after the move-in %v, want [a b]", keys)
	}
}
