package client

import (
	"reflect"
	"testing"
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
	if c, ok := evs[1].(*Change); !ok || c.Operation != Insert || !c.IsMoveIn ||
		!reflect.DeepEqual(c.Tags, []string{"h2"}) || !reflect.DeepEqual(c.ActiveConditions, []bool{true}) ||
		c.RemovedTags != nil || c.Value["value"] != "20" {
		t.Errorf("event 1 = %#v, want the move-in insert", evs[1])
	}
	if se, ok := evs[2].(*SnapshotEnd); !ok || se.Xmin != 773 {
		t.Errorf("event 2 = %#v, want the snapshot-end", evs[2])
	}
	if c, ok := evs[3].(*Change); !ok || c.Operation != Update || c.IsMoveIn ||
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
