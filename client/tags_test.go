package client

import (
	"crypto/md5"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/voltsync/volt"
)

// The headers and event messages of subquery shapes (§1.2 of the
// protocol notes), decoded.
func TestDecodeSubqueryMessages(t *testing.T) {
	body := `[
 {"headers":{"event":"move-in","patterns":[{"pos":0,"value":"h2"}],"txids":[772]}},
 {"key":"\"public\".\"child\"/\"2\"","value":{"id":"2","parent_id":"2","value":"20"},
  "headers":{"operation":"insert","relation":["public","child"],"is_move_in":true,"tags":["h2"],"active_conditions":[true]}},
 {"headers":{"control":"snapshot-end","xmin":"773","xmax":"773","xip_list":[]}},
 {"key":"\"public\".\"child\"/\"2\"","value":{"id":"2"},
  "headers":{"operation":"update","relation":["public","child"],"tags":["h3/","/1"],"removed_tags":["h2"],"active_conditions":[false,true],"txids":[775]}},
 {"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"},{"pos":2,"value":"h1"}],"txids":[]}},
 {"headers":{"event":"something-else","patterns":[{"pos":0,"value":"h1"}]}},
 {"key":"k","value":{"id":"1"},"headers":{"operation":"insert"}},
 {"headers":{"control":"up-to-date"}}
]`
	evs, err := decodeBody([]byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 {
		t.Fatalf("%d events, want 7 (the unknown event skipped): %#v", len(evs), evs)
	}
	if mv, ok := evs[0].(*Move); !ok || !reflect.DeepEqual(*mv, Move{Kind: MoveIn, Patterns: []MovePattern{{0, "h2"}}, Txids: []uint32{772}}) {
		t.Errorf("event 0 = %#v, want the move-in", evs[0])
	}
	if c, ok := evs[1].(*Change); !ok || c.Operation != volt.OpInsert || !c.IsMoveIn ||
		!reflect.DeepEqual(c.Tags, []string{"h2"}) || !reflect.DeepEqual(c.ActiveConditions, []bool{true}) ||
		c.RemovedTags != nil || c.Value["value"] != "20" {
		t.Errorf("event 1 = %#v, want the move-in insert", evs[1])
	}
	if se, ok := evs[2].(*SnapshotEnd); !ok || se.Xmin != 773 {
		t.Errorf("event 2 = %#v, want the snapshot-end", evs[2])
	}
	if c, ok := evs[3].(*Change); !ok || c.Operation != volt.OpUpdate || c.IsMoveIn ||
		!reflect.DeepEqual(c.Tags, []string{"h3/", "/1"}) || !reflect.DeepEqual(c.RemovedTags, []string{"h2"}) ||
		!reflect.DeepEqual(c.ActiveConditions, []bool{false, true}) || !reflect.DeepEqual(c.Txids, []uint32{775}) {
		t.Errorf("event 3 = %#v, want the update with its tags", evs[3])
	}
	if mv, ok := evs[4].(*Move); !ok || !reflect.DeepEqual(*mv, Move{Kind: MoveOut, Patterns: []MovePattern{{0, "h1"}, {2, "h1"}}}) {
		t.Errorf("event 4 = %#v, want the move-out", evs[4])
	}
	if c, ok := evs[5].(*Change); !ok || c.Tags != nil || c.RemovedTags != nil || c.ActiveConditions != nil || c.IsMoveIn || c.MovedOut {
		t.Errorf("event 5 = %#v, want a plain insert without subquery metadata", evs[5])
	}
	if _, ok := evs[6].(*UpToDate); !ok {
		t.Errorf("event 6 = %#v, want up-to-date", evs[6])
	}
}

func TestDecodeMoveRejectsNegativePosition(t *testing.T) {
	_, err := decodeBody([]byte(`[{"headers":{"event":"move-out","patterns":[{"pos":-1,"value":"h"}]}}]`), nil)
	if err == nil {
		t.Fatal("a move-out with pattern position -1 decoded without error")
	}
}

// sqHash is a slot value as §4.1 builds it, for the handle of the notes'
// worked example.
func sqHash(n string) string {
	return fmt.Sprintf("%x", md5.Sum([]byte("stk3833821-1724230000000000"+n)))
}

// sqExample replaces h1, h2, … in a body of the notes by slot hashes.
var sqExample = strings.NewReplacer("h1", sqHash("v:1"), "h2", sqHash("v:2"), "h3", sqHash("v:3"))

// sqFeed applies body (a JSON array of messages, h1… replaced) to sh as
// one batch and returns what a subscriber was told.
func sqFeed(t *testing.T, sh *Shape, body string) ShapeChange {
	t.Helper()
	evs, err := decodeBody([]byte(sqExample.Replace(body)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got ShapeChange
	unsub := sh.Subscribe(func(sc ShapeChange) { got = sc })
	defer unsub()
	if err := sh.apply(Batch{Events: evs, Handle: "h", Offset: "0_0"}); err != nil {
		t.Fatal(err)
	}
	return got
}

// sqWant checks the shape's rows: key → column value "value" (the
// child's payload, or another column when given as col=text).
func sqWant(t *testing.T, sh *Shape, step string, want map[string]Row) {
	t.Helper()
	if got := rowsMap(sh); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: rows\n%v\nwant\n%v", step, got, want)
	}
}

// sqMovedOut returns the keys of the MovedOut deletes of sc.
func sqMovedOut(sc ShapeChange) []string {
	var keys []string
	for _, c := range sc.Changes {
		if c.MovedOut {
			if c.Operation != volt.OpDelete {
				panic("a MovedOut change that is not a delete")
			}
			keys = append(keys, c.Key)
		}
	}
	return keys
}

const (
	sqChild1 = `"public"."child"/"1"`
	sqChild2 = `"public"."child"/"2"`
)

func sqChild(id, parent, value string) Row {
	return Row{"id": id, "parent_id": parent, "value": value}
}

const sqSnapshot = `[
 {"key":"\"public\".\"child\"/\"1\"","value":{"id":"1","parent_id":"1","value":"10"},
  "headers":{"operation":"insert","relation":["public","child"],"tags":["h1"],"active_conditions":[true]}},
 {"headers":{"control":"snapshot-end","xmin":"771","xmax":"771","xip_list":[]}}
]`

// §1.1 to §1.3: the initial snapshot, a move-in, a move-out.
func TestSubquerySnapshotMoveInMoveOut(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, sqSnapshot)
	sqWant(t, sh, "1.1 snapshot", map[string]Row{sqChild1: sqChild("1", "1", "10")})

	sc := sqFeed(t, sh, `[
 {"headers":{"event":"move-in","patterns":[{"pos":0,"value":"h2"}],"txids":[772]}},
 {"key":"\"public\".\"child\"/\"2\"","value":{"id":"2","parent_id":"2","value":"20"},
  "headers":{"operation":"insert","relation":["public","child"],"is_move_in":true,"tags":["h2"],"active_conditions":[true]}},
 {"headers":{"control":"snapshot-end","xmin":"773","xmax":"773","xip_list":[]}},
 {"headers":{"control":"up-to-date"}}
]`)
	sqWant(t, sh, "1.2 move-in", map[string]Row{sqChild1: sqChild("1", "1", "10"), sqChild2: sqChild("2", "2", "20")})
	if len(sc.Moves) != 1 || sc.Moves[0].Kind != MoveIn || len(sc.Changes) != 1 || sqMovedOut(sc) != nil {
		t.Fatalf("1.2: subscriber told %+v, want the move-in and its insert", sc)
	}
	if !sh.txids.visible(772) {
		t.Error("1.2: the move-in's txid 772 is not visible after up-to-date")
	}

	sc = sqFeed(t, sh, `[
 {"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[774]}},
 {"headers":{"control":"up-to-date"}}
]`)
	sqWant(t, sh, "1.3 move-out", map[string]Row{sqChild2: sqChild("2", "2", "20")})
	if got := sqMovedOut(sc); !reflect.DeepEqual(got, []string{sqChild1}) {
		t.Fatalf("1.3: subscriber told of moved-out rows %v, want child 1", got)
	}
	if !reflect.DeepEqual(sc.Changes[0].Value, sqChild("1", "1", "10")) {
		t.Errorf("1.3: the moved-out delete carries %v, want the row as it was", sc.Changes[0].Value)
	}
	if !sh.txids.visible(774) {
		t.Error("1.3: the move-out's txid 774 is not visible after up-to-date")
	}
	if len(sh.moves.rows) != 1 || len(sh.moves.index) != 1 {
		t.Errorf("1.3: tracker keeps %d rows, %d index entries after the move-out; want child 2 alone", len(sh.moves.rows), len(sh.moves.index))
	}
}

// §1.4: several transactions during one move-in; each line of the log is
// a batch, checked after it is applied.
func TestSubqueryMovesDuringMoveIn(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, sqSnapshot)
	steps := []struct {
		msg  string
		want map[string]Row
	}{
		{`{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[801]}}`,
			map[string]Row{}},
		{`{"headers":{"event":"move-in","patterns":[{"pos":0,"value":"h2"}],"txids":[802]}}`,
			map[string]Row{}},
		{`{"key":"\"public\".\"child\"/\"2\"","value":{"id":"2","parent_id":"2","value":"12"},"headers":{"operation":"insert","is_move_in":true,"tags":["h2"],"active_conditions":[true],"relation":["public","child"]}}`,
			map[string]Row{sqChild2: sqChild("2", "2", "12")}},
		{`{"headers":{"control":"snapshot-end","xmin":"803","xmax":"805","xip_list":["803"]}}`,
			map[string]Row{sqChild2: sqChild("2", "2", "12")}},
		{`{"headers":{"event":"move-in","patterns":[{"pos":0,"value":"h1"}],"txids":[805]}}`,
			map[string]Row{sqChild2: sqChild("2", "2", "12")}},
		{`{"key":"\"public\".\"child\"/\"1\"","value":{"id":"1","parent_id":"1","value":"13"},"headers":{"operation":"insert","is_move_in":true,"tags":["h1"],"active_conditions":[true],"relation":["public","child"]}}`,
			map[string]Row{sqChild1: sqChild("1", "1", "13"), sqChild2: sqChild("2", "2", "12")}},
		{`{"headers":{"control":"snapshot-end","xmin":"807","xmax":"807","xip_list":[]}}`,
			map[string]Row{sqChild1: sqChild("1", "1", "13"), sqChild2: sqChild("2", "2", "12")}},
	}
	for i, s := range steps {
		sqFeed(t, sh, "["+s.msg+"]")
		sqWant(t, sh, fmt.Sprintf("1.4 step %d", i), s.want)
	}
	// Both rows are tracked again: moving 1 and 2 out empties the shape.
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"},{"pos":0,"value":"h2"}],"txids":[808]}}]`)
	sqWant(t, sh, "1.4 both out", map[string]Row{})
}

// §1.5: x IN sq OR include_child: a row held by the other disjunct stays
// on a move-out, and a move-in without rows flips its condition back.
func TestSubqueryOrWithPlainPredicate(t *testing.T) {
	sh := newTestShape(t)
	ins := func(id, ac string) string {
		return `{"key":"\"public\".\"child\"/\"` + id + `\"","value":{"id":"` + id + `","parent_id":"1","value":"` + id + `0"},
  "headers":{"operation":"insert","relation":["public","child"],"tags":["h1/","/1"],"active_conditions":` + ac + `}}`
	}
	sqFeed(t, sh, `[`+ins("1", "[true,true]")+`,`+ins("2", "[true,false]")+`]`)
	sqWant(t, sh, "snapshot", map[string]Row{sqChild1: sqChild("1", "1", "10"), sqChild2: sqChild("2", "1", "20")})

	sc := sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[900]}}]`)
	sqWant(t, sh, "move-out", map[string]Row{sqChild1: sqChild("1", "1", "10")})
	if got := sqMovedOut(sc); !reflect.DeepEqual(got, []string{sqChild2}) {
		t.Fatalf("move-out: moved-out rows %v, want child 2 only", got)
	}
	if ac := sh.moves.rows[sqChild1].ac; !reflect.DeepEqual(ac, []bool{false, true}) {
		t.Fatalf("move-out: child 1 has conditions %v, want [false true]", ac)
	}

	// The move-in sends no row: child 1 is already there through a1.
	sqFeed(t, sh, `[{"headers":{"event":"move-in","patterns":[{"pos":0,"value":"h1"}],"txids":[901]}},{"headers":{"control":"up-to-date"}}]`)
	sqWant(t, sh, "move-in", map[string]Row{sqChild1: sqChild("1", "1", "10")})
	if ac := sh.moves.rows[sqChild1].ac; !reflect.DeepEqual(ac, []bool{true, true}) {
		t.Fatalf("move-in: child 1 has conditions %v, want [true true]", ac)
	}

	// include_child becomes false: the row stays through a0 …
	sqFeed(t, sh, `[{"key":"\"public\".\"child\"/\"1\"","value":{"id":"1"},
  "headers":{"operation":"update","relation":["public","child"],"tags":["h1/","/1"],"removed_tags":[],"active_conditions":[true,false]}}]`)
	sqWant(t, sh, "update", map[string]Row{sqChild1: sqChild("1", "1", "10")})
	// … until the parent moves out.
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[902]}}]`)
	sqWant(t, sh, "second move-out", map[string]Row{})
}

// A move-out then a move-in of the same value, twice over.
func TestSubqueryMoveOutMoveInCycle(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, sqSnapshot)
	for i := range 3 {
		sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[]}}]`)
		sqWant(t, sh, fmt.Sprintf("cycle %d: move-out", i), map[string]Row{})
		v := fmt.Sprint(20 + i)
		sqFeed(t, sh, `[{"headers":{"event":"move-in","patterns":[{"pos":0,"value":"h1"}],"txids":[]}},
 {"key":"\"public\".\"child\"/\"1\"","value":{"id":"1","parent_id":"1","value":"`+v+`"},
  "headers":{"operation":"insert","relation":["public","child"],"is_move_in":true,"tags":["h1"],"active_conditions":[true]}},
 {"headers":{"control":"snapshot-end","xmin":"900","xmax":"900","xip_list":[]}}]`)
		sqWant(t, sh, fmt.Sprintf("cycle %d: move-in", i), map[string]Row{sqChild1: sqChild("1", "1", v)})
	}
}

// An update that changes only the referenced value: new tags, the old
// ones in removed_tags. The row then follows its new value only.
func TestSubqueryTagsOnlyUpdate(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, sqSnapshot)
	sqFeed(t, sh, `[{"key":"\"public\".\"child\"/\"1\"","value":{"id":"1","parent_id":"2"},
  "headers":{"operation":"update","relation":["public","child"],"tags":["h2"],"removed_tags":["h1"],"active_conditions":[true],"txids":[780]}}]`)
	sqWant(t, sh, "update", map[string]Row{sqChild1: sqChild("1", "2", "10")})
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[781]}}]`)
	sqWant(t, sh, "move-out of the old value", map[string]Row{sqChild1: sqChild("1", "2", "10")})
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h2"}],"txids":[782]}}]`)
	sqWant(t, sh, "move-out of the new value", map[string]Row{})
}

// A delete forgets the row's tags: a later move-out deletes nothing, and
// a re-insert starts afresh.
func TestSubqueryDelete(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, sqSnapshot)
	sqFeed(t, sh, `[{"key":"\"public\".\"child\"/\"1\"","value":{"id":"1"},
  "headers":{"operation":"delete","relation":["public","child"],"tags":["h1"],"active_conditions":[true],"txids":[790]}}]`)
	sqWant(t, sh, "delete", map[string]Row{})
	if len(sh.moves.rows) != 0 || len(sh.moves.index) != 0 {
		t.Fatalf("the tracker keeps %d rows and %d index entries after the delete", len(sh.moves.rows), len(sh.moves.index))
	}
	sc := sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[791]}}]`)
	if len(sc.Changes) != 0 {
		t.Fatalf("a move-out after the delete made changes %v", sc.Changes)
	}
	sqFeed(t, sh, `[{"key":"\"public\".\"child\"/\"1\"","value":{"id":"1","parent_id":"2","value":"11"},
  "headers":{"operation":"insert","relation":["public","child"],"tags":["h2"],"active_conditions":[true],"txids":[792]}}]`)
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[793]}}]`)
	sqWant(t, sh, "re-insert under another value", map[string]Row{sqChild1: sqChild("1", "2", "11")})
}

// A repeated insert of a row already there (a move-in re-sending it) is
// an upsert: one row, its tags kept.
func TestSubqueryRepeatedInsertIsUpsert(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, sqSnapshot)
	sqFeed(t, sh, `[{"headers":{"event":"move-in","patterns":[{"pos":0,"value":"h1"}],"txids":[]}},
 {"key":"\"public\".\"child\"/\"1\"","value":{"id":"1","parent_id":"1","value":"10"},
  "headers":{"operation":"insert","relation":["public","child"],"is_move_in":true,"tags":["h1"],"active_conditions":[true]}}]`)
	sqWant(t, sh, "re-insert", map[string]Row{sqChild1: sqChild("1", "1", "10")})
	if n := len(sh.moves.index[tagSlot{0, sqHash("v:1")}]); n != 1 {
		t.Fatalf("the index holds %d keys at (0, h1), want 1", n)
	}
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out", map[string]Row{})
}

// Row comparisons: (a, b) IN sq0 AND c IN sq1 has one position per
// subquery, the first slot hashing the pair; and the DNF of
// x IN sq0 AND (y IN sq1 OR z = 5) puts sq0 at two positions.
func TestSubqueryCompositePatterns(t *testing.T) {
	hab, hab2, hc := sqHash("a:v:1b:v:2"), sqHash("a:v:2b:v:2"), sqHash("v:7")
	sh := newTestShape(t)
	row := func(id, tag string) string {
		return fmt.Sprintf(`{"key":"k%s","value":{"id":"%s"},"headers":{"operation":"insert","tags":["%s"],"active_conditions":[true,true]}}`, id, id, tag)
	}
	sqFeed(t, sh, "["+row("1", hab+"/"+hc)+","+row("2", hab2+"/"+hc)+"]")
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"`+hab+`"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out of the pair (1,2)", map[string]Row{"k2": {"id": "2"}})
	// A pattern whose value sits at another position matches nothing.
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":1,"value":"`+hab2+`"}],"txids":[]}}]`)
	sqWant(t, sh, "pattern at the wrong position", map[string]Row{"k2": {"id": "2"}})
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":1,"value":"`+hc+`"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out of c", map[string]Row{})

	hx, hy := sqHash("v:1"), sqHash("v:2")
	sh = newTestShape(t)
	ins := func(id, ac string) string {
		return fmt.Sprintf(`{"key":"k%s","value":{"id":"%s"},"headers":{"operation":"insert","tags":["%s/%s//","//%s/1"],"active_conditions":%s}}`, id, id, hx, hy, hx, ac)
	}
	// Row 1 holds through y (disjunct 0); row 2 through z = 5 (disjunct 1).
	sqFeed(t, sh, "["+ins("1", "[true,true,true,false]")+","+ins("2", "[true,false,true,true]")+"]")
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":1,"value":"`+hy+`"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out of y", map[string]Row{"k2": {"id": "2"}})
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"`+hx+`"},{"pos":2,"value":"`+hx+`"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out of x at positions 0 and 2", map[string]Row{})
}

// Rows without active_conditions follow the older rule: a move-out
// removes the matching tags and the row goes with its last tag.
func TestSubqueryFallbackWithoutConditions(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, `[
 {"key":"k1","value":{"id":"1"},"headers":{"operation":"insert","tags":["a","b"]}},
 {"key":"k2","value":{"id":"2"},"headers":{"operation":"insert","tags":["a"]}}]`)
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"a"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out of a", map[string]Row{"k1": {"id": "1"}})
	sqFeed(t, sh, `[{"headers":{"event":"move-in","patterns":[{"pos":0,"value":"a"}],"txids":[]}}]`)
	sqWant(t, sh, "move-in of a", map[string]Row{"k1": {"id": "1"}})
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"b"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out of b", map[string]Row{})
}

// Tags of another width than the first ones are ignored, and a
// must-refetch forgets everything, the width included.
func TestSubqueryTagWidthAndRefetch(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, `[
 {"key":"k1","value":{"id":"1"},"headers":{"operation":"insert","tags":["a/"],"active_conditions":[true,false]}},
 {"key":"k2","value":{"id":"2"},"headers":{"operation":"insert","tags":["a"],"active_conditions":[true]}}]`)
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"a"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out", map[string]Row{"k2": {"id": "2"}})

	sh.apply(Batch{Events: []Event{&MustRefetch{Handle: "h2"}}})
	sqFeed(t, sh, `[{"key":"k2","value":{"id":"2"},"headers":{"operation":"insert","tags":["a"],"active_conditions":[true]}}]`)
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"a"}],"txids":[]}}]`)
	sqWant(t, sh, "move-out after must-refetch", map[string]Row{})
}

// An Optimistic over a subquery shape drops the rows that move out, at
// the shape's next up-to-date.
func TestSubqueryOptimisticMirror(t *testing.T) {
	sh := newTestShape(t)
	sqFeed(t, sh, sqSnapshot[:len(sqSnapshot)-1]+`,{"headers":{"control":"up-to-date"}}]`)
	w := fakeWriter(t, &chanTransport{reqs: make(chan *pendingReq)}, writerOptions{})
	o, err := NewOptimistic(OptimisticOptions{Writer: w, Shapes: []*Shape{sh}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if rows := o.Rows(sh); len(rows) != 1 {
		t.Fatalf("Optimistic sees %v before the move-out, want child 1", rows)
	}
	sqFeed(t, sh, `[{"headers":{"event":"move-out","patterns":[{"pos":0,"value":"h1"}],"txids":[774]}},{"headers":{"control":"up-to-date"}}]`)
	if rows := o.Rows(sh); len(rows) != 0 {
		t.Fatalf("Optimistic sees %v after the move-out, want no rows", rows)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if m := o.mirrors[sh]; !m.txids.visible(774) {
		t.Error("the mirror does not count the move-out's txid 774 as seen")
	}
}
