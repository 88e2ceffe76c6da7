package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/testseed"
)

func newTestShape(t *testing.T) *Shape {
	sh, err := newShape(shapeOptions{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// model applies events the simple way: it replays every change since the
// last must-refetch from scratch.
type model struct{ log []*Change }

func (m *model) add(ev Event) {
	switch e := ev.(type) {
	case *MustRefetch:
		m.log = nil
	case *Change:
		m.log = append(m.log, e)
	}
}

func (m *model) rows() map[string]Row {
	rows := map[string]Row{}
	for _, c := range m.log {
		switch c.Operation {
		case volt.OpInsert:
			rows[c.Key] = Row{}
			for k, v := range c.Value {
				rows[c.Key][k] = v
			}
		case volt.OpUpdate:
			if rows[c.Key] == nil {
				rows[c.Key] = Row{}
			}
			for k, v := range c.Value {
				rows[c.Key][k] = v
			}
		case volt.OpDelete:
			delete(rows, c.Key)
		}
	}
	return rows
}

func randomBatch(r *rand.Rand) []Event {
	var evs []Event
	if r.IntN(20) == 0 {
		return []Event{&MustRefetch{Handle: "h"}}
	}
	for range r.IntN(6) {
		key := fmt.Sprintf("k%d", r.IntN(8))
		c := &Change{Key: key, Value: Row{"id": key}, Txids: []uint32{r.Uint32N(50)}}
		switch r.IntN(3) {
		case 0:
			c.Operation = volt.OpInsert
			c.Value["a"], c.Value["b"] = int64(r.IntN(5)), "x"
		case 1:
			c.Operation = volt.OpUpdate
			if r.IntN(2) == 0 {
				c.Value["a"] = int64(r.IntN(5))
			} else {
				c.Value["b"] = nil
			}
		default:
			c.Operation = volt.OpDelete
		}
		evs = append(evs, c)
	}
	if r.IntN(2) == 0 {
		evs = append(evs, &UpToDate{LSN: uint64(r.IntN(100))})
	}
	return evs
}

// TestShapeMatchesModel applies random batches to a Shape and checks its
// rows against the model, and that a subscriber rebuilding the rows from
// what it is told agrees.
func TestShapeMatchesModel(t *testing.T) {
	r := testseed.Rand(t, 1)
	for iter := range 200 {
		sh := newTestShape(t)
		var m model
		sub := map[string]Row{}
		var told []ShapeChange
		sh.Subscribe(func(sc ShapeChange) {
			told = append(told, sc)
			if sc.MustRefetch {
				clear(sub)
			}
			for _, c := range sc.Changes {
				if row := mergeRow(sub[c.Key], c); row != nil {
					sub[c.Key] = row
				} else {
					delete(sub, c.Key)
				}
			}
			if !reflect.DeepEqual(rowsMap(sh), sub) {
				t.Fatalf("iteration %d: subscriber sees %v, shape has %v", iter, sub, rowsMap(sh))
			}
		})
		nBatches := r.IntN(30)
		for b := range nBatches {
			evs := randomBatch(r)
			for _, ev := range evs {
				m.add(ev)
			}
			if err := sh.apply(Batch{Events: evs, Offset: fmt.Sprint(b)}); err != nil {
				t.Fatal(err)
			}
			if want := m.rows(); !reflect.DeepEqual(rowsMap(sh), want) {
				t.Fatalf("iteration %d batch %d: rows %v, model %v", iter, b, rowsMap(sh), want)
			}
		}
		if len(told) != nBatches {
			t.Fatalf("subscriber told %d times for %d batches", len(told), nBatches)
		}
		for i, sc := range told {
			if sc.Offset != fmt.Sprint(i) {
				t.Fatalf("batch %d told as %s: out of order", i, sc.Offset)
			}
		}
		if !slices.IsSorted(sh.Keys()) {
			t.Fatal("keys not sorted")
		}
	}
}

func mergeRow(row Row, c *Change) Row {
	if c.Operation == volt.OpDelete {
		return nil
	}
	if row == nil || c.Operation == volt.OpInsert {
		row = Row{}
	}
	for k, v := range c.Value {
		row[k] = v
	}
	return row
}

// rowsMap returns the shape's rows by key, through Keys and Rows.
func rowsMap(sh *Shape) map[string]Row {
	m := map[string]Row{}
	keys, rows := sh.Keys(), sh.Rows()
	for i, k := range keys {
		m[k] = rows[i]
	}
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return m
}

func TestShapeRowsAreCopies(t *testing.T) {
	sh := newTestShape(t)
	sh.apply(Batch{Events: []Event{&Change{Key: "a", Operation: volt.OpInsert, Value: Row{"x": int64(1)}}}})
	sh.Rows()[0]["x"] = int64(2)
	row, _ := sh.Get("a")
	row["x"] = int64(3)
	if row, ok := sh.Get("a"); !ok || row["x"] != int64(1) || sh.Len() != 1 {
		t.Errorf("row changed through a copy: %v", row)
	}
}

func TestAwaitTxid(t *testing.T) {
	sh := newTestShape(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sh.AwaitTxid(ctx, 900) }()
	sh.apply(Batch{Events: []Event{&Change{Key: "a", Operation: volt.OpInsert, Value: Row{}, Txids: []uint32{900}}}})
	select {
	case err := <-done:
		t.Fatalf("resolved before up-to-date: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	sh.apply(Batch{Events: []Event{&UpToDate{LSN: 5}}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	sh.apply(Batch{Events: []Event{&SnapshotEnd{volt.Snapshot{Xmin: 100, Xmax: 105, Xip: []uint64{103}}}}})
	if err := sh.AwaitTxid(ctx, 99); err != nil {
		t.Errorf("xid before xmin: %v", err)
	}
	if err := sh.AwaitTxid(ctx, 104); err != nil {
		t.Errorf("xid committed before the snapshot: %v", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if err := sh.AwaitTxid(short, 103); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("in-progress xid: %v", err)
	}
	// Pending txids of a batch cut off by a must-refetch do not count.
	sh.apply(Batch{Events: []Event{&Change{Key: "b", Operation: volt.OpInsert, Value: Row{}, Txids: []uint32{950}}}})
	sh.apply(Batch{Events: []Event{&MustRefetch{}}})
	sh.apply(Batch{Events: []Event{&UpToDate{}}})
	short, cancel3 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel3()
	if err := sh.AwaitTxid(short, 950); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("discarded txid: %v", err)
	}
}

func TestAwaitFailsWhenRunStops(t *testing.T) {
	f := newFakeServer(t, answer(400, `{"message":"Invalid request"}`))
	sh, _ := newShape(f.opts())
	errc := make(chan error, 1)
	go func() { errc <- sh.AwaitTxid(context.Background(), 1) }()
	if err := sh.Run(context.Background()); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("Run = %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrStopped) || !errors.Is(err, ErrBadRequest) {
		t.Errorf("AwaitTxid = %v", err)
	}
}

func TestAwaitReceiptFromRows(t *testing.T) {
	sh := newTestShape(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan Receipt, 1)
	go func() {
		r, err := sh.AwaitReceipt(ctx, "c1", 2)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	row := func(client string, seq int64, status string, txid any) *Change {
		return &Change{Key: fmt.Sprint(client, seq), Operation: volt.OpInsert, Value: Row{
			"client_id": client, "seq": seq, "status": status, "code": nil, "message": nil, "txid": txid, "xid8": "77", "lsn": nil}}
	}
	sh.apply(Batch{Events: []Event{row("c1", 1, "accepted", int64(76)), row("c2", 2, "accepted", int64(5)), &UpToDate{}}})
	sh.apply(Batch{Events: []Event{row("c1", 2, "accepted", int64(77)), &UpToDate{}}})
	r := <-done
	if r.Status != "accepted" || r.Txid != 77 || r.Seq != 2 || r.ClientID != "c1" || r.Xid8 != "77" {
		t.Errorf("receipt %+v", r)
	}
}
