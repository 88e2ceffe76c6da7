package client

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

var itemsSchema = Schema{"id": {Type: "text", PKIndex: new(int)}, "v": {Type: "int4"}}

// itemsShape is a Shape of items fed by the test (sh.apply) instead of Run.
func itemsShape(t *testing.T) *Shape {
	sh, err := newShape(shapeOptions{URL: "http://volt.test", Table: "items"})
	if err != nil {
		t.Fatal(err)
	}
	sh.stream.schema = itemsSchema
	return sh
}

// state is what a reader saw at one moment.
type state struct {
	view    map[string]Row // by key
	base    map[string]Row
	pending []*optTx
	// delivered is how much of the server's log the shape had been given.
	delivered int
}

func TestOptimisticProperty(t *testing.T) {
	for seed := uint64(1); seed <= 60; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { optimisticRun(t, seed) })
	}
}

func optimisticRun(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	ctx, cancel := ctxTest()
	defer cancel()
	db := newFakeDB()
	db.forbid = func(int64) bool { return r.IntN(8) == 0 }
	tr := &chanTransport{reqs: make(chan *pendingReq)}
	w := fakeWriter(t, tr, writerOptions{})
	sh := itemsShape(t)
	sh.apply(Batch{Events: []Event{&SnapshotEnd{volt.Snapshot{Xmin: 100, Xmax: 100}}, &UpToDate{}}})
	o, err := NewOptimistic(OptimisticOptions{Writer: w, Shapes: []*Shape{sh}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	m := o.mirrors[sh]

	var states []state
	var delivered atomic.Int64
	o.observe = func() {
		states = append(states, state{view: o.viewLocked(m), base: maps.Clone(m.rows), pending: slices.Clone(o.pending), delivered: int(delivered.Load())})
	}
	var rollMu sync.Mutex
	rollbacks := map[int64]string{}
	o.OnRollback(func(seq int64, res volt.MutationResult) {
		rollMu.Lock()
		defer rollMu.Unlock()
		rollbacks[seq] = res.Code
	})

	// Every Apply, with what the test knows of it.
	type applied struct {
		muts []volt.Mutation
		p    *optTx
		res  volt.MutationResult
		err  error
		done chan struct{}
	}
	var applies []*applied
	fresh := 0
	deliver := func(upTo int, upToDate bool) {
		db.mu.Lock()
		evs := []Event{}
		for _, c := range db.log[delivered.Load():upTo] {
			evs = append(evs, c)
		}
		var lsn uint64 // global_last_seen_lsn: the last commit delivered
		if upTo > 0 {
			lsn = db.log[upTo-1].LSN
		}
		db.mu.Unlock()
		delivered.Store(int64(upTo))
		if upToDate {
			evs = append(evs, &UpToDate{LSN: lsn})
		}
		if len(evs) > 0 {
			sh.apply(Batch{Events: evs})
		}
	}
	refetch := func() {
		db.mu.Lock()
		evs := []Event{}
		for _, id := range slices.Sorted(maps.Keys(db.rows)) {
			evs = append(evs, &Change{Key: itemKey(id), Operation: volt.OpInsert, Value: db.rows[id].clone()})
		}
		evs = append(evs, &SnapshotEnd{volt.Snapshot{Xmin: uint64(db.xid) + 1, Xmax: uint64(db.xid) + 1}})
		delivered.Store(int64(len(db.log)))
		db.mu.Unlock()
		sh.apply(Batch{Events: []Event{&MustRefetch{}}})
		half := len(evs) / 2
		sh.apply(Batch{Events: evs[:half]})
		sh.apply(Batch{Events: append(evs[half:], &UpToDate{LSN: uint64(db.xid)})})
	}
	// answer answers one waiting request, if there is one.
	answer := func() bool {
		var p *pendingReq
		select {
		case p = <-tr.reqs:
		default:
			return false
		}
		switch r.IntN(6) {
		case 0: // lost response
			db.handle(p.req)
			p.answer <- func() (*http.Response, error) { return nil, errLostResponse }
		case 1:
			p.answer <- func() (*http.Response, error) { return jsonResponse(503, volt.MutationError{}), nil }
		default:
			resp := db.handle(p.req)
			p.answer <- func() (*http.Response, error) { return jsonResponse(200, resp), nil }
		}
		return true
	}
	outstanding := func() int {
		n := 0
		for _, a := range applies {
			select {
			case <-a.done:
			default:
				n++
			}
		}
		return n
	}
	knownIDs := func() []string {
		ids := map[string]bool{}
		db.mu.Lock()
		for id := range db.rows {
			ids[id] = true
		}
		db.mu.Unlock()
		for _, a := range applies {
			ids[mutID(a.muts[0])] = true
		}
		return slices.Sorted(maps.Keys(ids))
	}

	for step := 0; step < 80; step++ {
		switch k := r.IntN(10); {
		case k < 3 && outstanding() < 4: // local transaction
			var muts []volt.Mutation
			ids := knownIDs()
			switch {
			case r.IntN(2) == 0 || len(ids) == 0:
				fresh++
				muts = insertItem(fmt.Sprintf("n%d", fresh), r.IntN(100))
			case r.IntN(3) > 0:
				id := ids[r.IntN(len(ids))]
				muts = []volt.Mutation{{Op: volt.OpUpdate, Table: "items", Key: map[string]any{"id": id}, Values: map[string]any{"v": r.IntN(100)}}}
			default:
				id := ids[r.IntN(len(ids))]
				muts = []volt.Mutation{{Op: volt.OpDelete, Table: "items", Key: map[string]any{"id": id}}}
			}
			a := &applied{muts: muts, done: make(chan struct{})}
			applies = append(applies, a)
			go func() {
				defer close(a.done)
				a.res, a.err = o.Apply(ctx, muts)
			}()
			// Wait until shown: it cannot be decided before the test
			// answers a request that carries it.
			for a.p == nil {
				runtime.Gosched()
				o.mu.Lock()
				for _, p := range o.pending {
					if p.t != nil && &p.t.muts[0] == &muts[0] {
						a.p = p
					}
				}
				o.mu.Unlock()
			}
		case k < 5: // another writer
			db.mu.Lock()
			id := fmt.Sprintf("o%d", r.IntN(4))
			if r.IntN(2) == 0 && len(db.rows) > 0 {
				id = slices.Sorted(maps.Keys(db.rows))[r.IntN(len(db.rows))]
			}
			if _, ok := db.rows[id]; ok && r.IntN(3) == 0 {
				db.commitLocked([]volt.Mutation{{Op: volt.OpDelete, Key: map[string]any{"id": id}}})
			} else if ok {
				db.commitLocked([]volt.Mutation{{Op: volt.OpUpdate, Key: map[string]any{"id": id}, Values: map[string]any{"v": 1000 + r.IntN(100)}}})
			} else {
				db.commitLocked(insertItem(id, 1000+r.IntN(100)))
			}
			db.mu.Unlock()
		case k < 8:
			answer()
		case k < 9 || r.IntN(4) > 0: // some of the log
			db.mu.Lock()
			n := len(db.log)
			db.mu.Unlock()
			if d := int(delivered.Load()); n > d {
				deliver(d+1+r.IntN(n-d), r.IntN(3) > 0)
			} else {
				deliver(d, true)
			}
		default:
			refetch()
		}
	}
	for deadline := time.Now().Add(20 * time.Second); outstanding() > 0; {
		if !answer() {
			if time.Now().After(deadline) {
				t.Fatal("no request while transactions are pending")
			}
			time.Sleep(time.Millisecond)
		}
	}
	db.mu.Lock()
	n := len(db.log)
	db.mu.Unlock()
	deliver(n, true)

	// Final state: nothing pending, and the rows are the server's.
	if o.Pending() != 0 {
		t.Fatalf("%d transactions still pending", o.Pending())
	}
	got := map[string]Row{}
	for _, row := range o.Rows(sh) {
		got[itemKey(row["id"].(string))] = row
	}
	want := map[string]Row{}
	for id, row := range db.rows {
		want[itemKey(id)] = row
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("final rows\n got %v\nwant %v", got, want)
	}

	// Exactly once, and one rollback event per rejected transaction.
	rollMu.Lock()
	for _, a := range applies {
		var rej *RejectedError
		if errors.As(a.err, &rej) != (a.res.Status == volt.StatusRejected) || (rej != nil && rej.Result.Seq != a.res.Seq) {
			t.Fatalf("Apply: result %+v with error %v", a.res, a.err)
		} else if a.err != nil && rej == nil {
			t.Fatalf("Apply: %v", a.err)
		}
		code, rolled := rollbacks[a.res.Seq]
		if rolled != (a.res.Status == volt.StatusRejected) || code != a.res.Code {
			t.Errorf("seq %d: result %+v, rollback event %v %q", a.res.Seq, a.res, rolled, code)
		}
		if stored := db.stored["c1"][a.res.Seq]; stored.Status != a.res.Status || stored.Txid != a.res.Txid {
			t.Errorf("seq %d: result %+v, stored %+v", a.res.Seq, a.res, stored)
		}
	}
	rollMu.Unlock()
	if got := len(db.stored["c1"]); got != len(applies) {
		t.Errorf("%d results stored for %d transactions", got, len(applies))
	}

	// Every state: the view is the base with the pending transactions on
	// top (recomputed here from the mutations), and a locally inserted row
	// stays visible while its transaction is pending, unless a later local
	// transaction deletes it.
	byTx := map[*optTx]*applied{}
	for _, a := range applies {
		byTx[a.p] = a
	}
	for i, s := range states {
		want := maps.Clone(s.base)
		for _, p := range s.pending {
			for _, mut := range byTx[p].muts {
				key := itemKey(mutID(mut))
				switch mut.Op {
				case volt.OpInsert:
					row := want[key].clone()
					row["id"], row["v"] = mutID(mut), mutV(mut)
					want[key] = row
				case volt.OpUpdate:
					if old, ok := want[key]; ok {
						row := old.clone()
						row["v"] = mutV(mut)
						want[key] = row
					}
				case volt.OpDelete:
					delete(want, key)
				}
			}
		}
		if !reflect.DeepEqual(s.view, want) {
			t.Fatalf("state %d: view %v, want base %v with pending on top: %v", i, s.view, s.base, want)
		}
		for j, p := range s.pending {
			mut := byTx[p].muts[0]
			if mut.Op != volt.OpInsert {
				continue
			}
			deletedLater := false
			for _, q := range s.pending[j+1:] {
				if qm := byTx[q].muts[0]; qm.Op == volt.OpDelete && mutID(qm) == mutID(mut) {
					deletedLater = true
				}
			}
			if _, ok := s.view[itemKey(mutID(mut))]; !ok && !deletedLater {
				t.Fatalf("state %d: pending insert of %s not visible", i, mutID(mut))
			}
		}
	}
	// No flicker: a row inserted locally and accepted is visible from its
	// Apply until the state where its transaction leaves the overlay, and
	// in that state too unless the server no longer has it there.
	for _, a := range applies {
		if a.muts[0].Op != volt.OpInsert || a.res.Status != volt.StatusAccepted {
			continue
		}
		key := itemKey(mutID(a.muts[0]))
		in := false
		for i, s := range states {
			pending := slices.Contains(s.pending, a.p)
			if pending {
				in = true
				continue
			}
			if in {
				_, inView := s.view[key]
				_, inBase := s.base[key]
				switch {
				case inView:
				case inBase: // hidden: only by a later local delete
					if !slices.ContainsFunc(s.pending, func(q *optTx) bool {
						return q.t.muts[0].Op == volt.OpDelete && mutID(q.t.muts[0]) == mutID(a.muts[0])
					}) {
						t.Fatalf("state %d: %s vanished when its transaction was confirmed", i, key)
					}
				default: // not in the rows: only if the delivered log deletes it after the insert
					db.mu.Lock()
					log := db.log[:s.delivered]
					db.mu.Unlock()
					ins := slices.IndexFunc(log, func(c *Change) bool { return c.Key == key && c.Operation == volt.OpInsert })
					if ins < 0 || !slices.ContainsFunc(log[ins:], func(c *Change) bool { return c.Key == key && c.Operation == volt.OpDelete }) {
						t.Fatalf("state %d: %s left the overlay before its echo was in the rows", i, key)
					}
				}
				break
			}
		}
	}
}

// TestOptimisticRollbackEvent checks a rejected transaction's event, and
// that a later transaction of the same request on the same row rolls back
// with it as dependent.
func TestOptimisticRollbackEvent(t *testing.T) {
	ctx, cancel := ctxTest()
	defer cancel()
	db := newFakeDB()
	db.rows["a"] = Row{"id": "a", "v": int32(0)}
	tr := &chanTransport{reqs: make(chan *pendingReq)}
	w := fakeWriter(t, tr, writerOptions{})
	sh := itemsShape(t)
	sh.apply(Batch{Events: []Event{&Change{Key: itemKey("a"), Operation: volt.OpInsert, Value: Row{"id": "a", "v": int32(0)}}, &UpToDate{}}})
	o, err := NewOptimistic(OptimisticOptions{Writer: w, Shapes: []*Shape{sh}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	events := make(chan volt.MutationResult, 2)
	o.OnRollback(func(seq int64, res volt.MutationResult) { events <- res })

	var wg sync.WaitGroup
	apply := func(muts []volt.Mutation) {
		wg.Add(1)
		n := o.Pending()
		go func() {
			defer wg.Done()
			_, _ = o.Apply(ctx, muts)
		}()
		for o.Pending() == n {
			runtime.Gosched()
		}
	}
	apply(insertItem("a", 5)) // unique violation
	p := <-tr.reqs            // seq 1 in flight alone
	apply([]volt.Mutation{{Op: volt.OpUpdate, Table: "items", Key: map[string]any{"id": "a"}, Values: map[string]any{"v": 6}}})
	if r, _ := o.Get(sh, itemKey("a")); r["v"] != int32(6) {
		t.Fatalf("overlay shows %v", r)
	}
	p.answer <- func() (*http.Response, error) { return jsonResponse(503, volt.MutationError{}), nil }
	p = <-tr.reqs // seqs 1 and 2 together
	if len(p.req.Transactions) != 2 {
		t.Fatalf("resent %d transactions", len(p.req.Transactions))
	}
	resp := db.handle(p.req)
	p.answer <- func() (*http.Response, error) { return jsonResponse(200, resp), nil }
	wg.Wait()
	for _, want := range []string{volt.CodeConstraint, volt.CodeDependent} {
		if res := <-events; res.Code != want {
			t.Fatalf("rollback %+v, want code %s", res, want)
		}
	}
	if r, _ := o.Get(sh, itemKey("a")); r["v"] != int32(0) || o.Pending() != 0 {
		t.Fatalf("row %v, %d pending", r, o.Pending())
	}
}
