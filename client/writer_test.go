package client

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

func insertItem(id string, v int) []volt.Mutation {
	return []volt.Mutation{{Op: volt.OpInsert, Table: "items", Values: map[string]any{"id": id, "v": v}}}
}

// fakeWriter returns a Writer whose requests go to rt.
func fakeWriter(t *testing.T, rt http.RoundTripper, opts writerOptions) *Writer {
	t.Helper()
	opts.URL = "http://volt.test"
	if opts.ClientID == "" {
		opts.ClientID = "c1"
	}
	opts.HTTPClient = &http.Client{Transport: rt}
	opts.MinBackoff, opts.MaxBackoff = time.Millisecond, 5*time.Millisecond
	w, err := newWriter(opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// flaky serves db, failing requests as fail says: "lost" applies the
// request and loses the answer, "503" answers 503, "retry" answers every
// transaction with status retry, "" serves normally.
func flaky(db *fakeDB, fail func(n int) string) (http.RoundTripper, *atomic.Int32) {
	var n atomic.Int32
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		req, err := decodeMutationRequest(r)
		if err != nil {
			return nil, err
		}
		i := int(n.Add(1))
		switch fail(i) {
		case "lost":
			db.handle(req)
			return nil, errLostResponse
		case "503":
			return jsonResponse(503, volt.MutationError{Message: "down"}), nil
		case "retry":
			var resp volt.MutationResponse
			for _, tx := range req.Transactions {
				resp.Results = append(resp.Results, volt.MutationResult{Seq: tx.Seq, Status: volt.StatusRetry})
			}
			return jsonResponse(200, resp), nil
		}
		return jsonResponse(200, db.handle(req)), nil
	}), &n
}

func TestWriterRetriesWithSameSeq(t *testing.T) {
	ctx, cancel := ctxTest()
	defer cancel()
	db := newFakeDB()
	rt, n := flaky(db, func(i int) string {
		return map[int]string{1: "lost", 2: "503", 3: "retry", 4: "lost"}[i]
	})
	w := fakeWriter(t, rt, writerOptions{})
	res, err := w.Write(ctx, insertItem("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != volt.StatusAccepted || res.Seq != 1 || !res.Replayed {
		t.Fatalf("result %+v", res)
	}
	res, err = w.Write(ctx, insertItem("b", 2)) // lost again, then replayed
	if err != nil || res.Status != volt.StatusAccepted || res.Seq != 2 {
		t.Fatalf("result %+v, %v", res, err)
	}
	if db.applied != 2 || len(db.rows) != 2 {
		t.Errorf("applied %d transactions, %d rows; want 2, 2", db.applied, len(db.rows))
	}
	if n.Load() != 6 {
		t.Errorf("%d requests, want 6", n.Load())
	}
	if len(w.Pending()) != 0 {
		t.Errorf("pending after success: %v", w.Pending())
	}
}

func TestWriterRejectionAndDependent(t *testing.T) {
	ctx, cancel := ctxTest()
	defer cancel()
	db := newFakeDB()
	db.rows["a"] = Row{"id": "a", "v": int32(0)}
	rt, _ := flaky(db, func(int) string { return "" })
	w := fakeWriter(t, rt, writerOptions{})
	results, err := w.WriteBatch(ctx, [][]volt.Mutation{
		insertItem("a", 1), // constraint
		{{Op: volt.OpUpdate, Table: "items", Key: map[string]any{"id": "a"}, Values: map[string]any{"v": 2}}}, // dependent
		insertItem("b", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{results[0].Code, results[1].Code, results[2].Status}
	if codes[0] != volt.CodeConstraint || codes[1] != volt.CodeDependent || codes[2] != volt.StatusAccepted {
		t.Fatalf("results %+v", results)
	}
}

func TestWriterUnauthorizedKeepsQueue(t *testing.T) {
	ctx, cancel := ctxTest()
	defer cancel()
	db := newFakeDB()
	var token atomic.Value
	token.Store("old")
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("Authorization") != "Bearer new" {
			return jsonResponse(401, volt.MutationError{Message: "expired", Code: volt.CodeUnauthorized}), nil
		}
		req, _ := decodeMutationRequest(r)
		return jsonResponse(200, db.handle(req)), nil
	})
	w := fakeWriter(t, rt, writerOptions{TokenSource: TokenFunc(func(context.Context) (string, error) { return token.Load().(string), nil })})
	_, err := w.Write(ctx, insertItem("a", 1))
	var ue *UnauthorizedError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnauthorized) || len(ue.Pending) != 1 || ue.Pending[0].Seq != 1 {
		t.Fatalf("err %v", err)
	}
	if p := w.Pending(); len(p) != 1 {
		t.Fatalf("pending %v", p)
	}
	token.Store("new")
	res, err := w.Write(ctx, insertItem("b", 1)) // sends seq 1 first
	if err != nil || res.Seq != 2 || res.Status != volt.StatusAccepted {
		t.Fatalf("%+v %v", res, err)
	}
	if db.applied != 2 || len(w.Pending()) != 0 {
		t.Errorf("applied %d, pending %v", db.applied, w.Pending())
	}
}

func TestWriterOutOfOrder(t *testing.T) {
	ctx, cancel := ctxTest()
	defer cancel()
	t.Run("gap: renumber", func(t *testing.T) {
		db := newFakeDB()
		db.lastSeq["c1"] = 4 // seqs 5..9 were reserved by a process that never sent them
		rt, _ := flaky(db, func(int) string { return "" })
		store := NewMemorySeqStore(10)
		w := fakeWriter(t, rt, writerOptions{Seqs: store})
		res, err := w.Write(ctx, insertItem("a", 1))
		if err != nil || res.Seq != 5 || res.Status != volt.StatusAccepted {
			t.Fatalf("%+v %v", res, err)
		}
		if store.Next() != 6 {
			t.Errorf("next seq %d, want 6", store.Next())
		}
	})
	t.Run("behind: fail, then move forward", func(t *testing.T) {
		db := newFakeDB()
		db.lastSeq["c1"] = 7 // receipts of 1..7 pruned
		rt, _ := flaky(db, func(int) string { return "" })
		store := NewMemorySeqStore(3)
		w := fakeWriter(t, rt, writerOptions{Seqs: store})
		_, err := w.Write(ctx, insertItem("a", 1))
		var se *SeqError
		if !errors.As(err, &se) || !errors.Is(err, ErrOutOfOrder) || se.Seq != 3 || se.Expected != 8 {
			t.Fatalf("err %v", err)
		}
		if db.applied != 0 || store.Next() != 8 {
			t.Fatalf("applied %d, next %d", db.applied, store.Next())
		}
		res, err := w.Write(ctx, insertItem("a", 1))
		if err != nil || res.Seq != 8 {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("replayed on first send", func(t *testing.T) {
		db := newFakeDB()
		rt, _ := flaky(db, func(int) string { return "" })
		other := fakeWriter(t, rt, writerOptions{})
		if _, err := other.Write(ctx, insertItem("x", 1)); err != nil {
			t.Fatal(err)
		}
		w := fakeWriter(t, rt, writerOptions{}) // same client id, store from 1
		_, err := w.Write(ctx, insertItem("a", 1))
		if !errors.Is(err, ErrSeqReused) {
			t.Fatalf("err %v", err)
		}
		if db.applied != 1 {
			t.Errorf("applied %d", db.applied)
		}
	})
	t.Run("replayed, sent before by another process", func(t *testing.T) {
		db := newFakeDB()
		rt, _ := flaky(db, func(int) string { return "" })
		crashed := fakeWriter(t, rt, writerOptions{})
		if _, err := crashed.WriteBatch(ctx, [][]volt.Mutation{insertItem("a", 1), insertItem("b", 2)}); err != nil {
			t.Fatal(err)
		}
		// The process that sent seqs 1 and 2 died before it recorded the
		// answers; its successor sends them again with seq 3, new.
		w := fakeWriter(t, rt, writerOptions{SentBefore: func(seq int64) bool { return seq <= 2 }})
		res, err := w.WriteBatch(ctx, [][]volt.Mutation{insertItem("a", 1), insertItem("b", 2), insertItem("c", 3)})
		if err != nil || len(res) != 3 {
			t.Fatalf("%+v %v", res, err)
		}
		if !res[0].Replayed || !res[1].Replayed || res[2].Replayed || res[2].Status != volt.StatusAccepted {
			t.Fatalf("results %+v, want seqs 1 and 2 replayed, 3 accepted", res)
		}
		if db.applied != 3 {
			t.Errorf("applied %d, want 3", db.applied)
		}
	})
}

func TestWriterCancelKeepsTransactionQueued(t *testing.T) {
	db := newFakeDB()
	tr := &chanTransport{reqs: make(chan *pendingReq)}
	w := fakeWriter(t, tr, writerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(ctx, insertItem("a", 1))
		errc <- err
	}()
	p := <-tr.reqs
	db.handle(p.req) // applied, but the caller gives up before the answer
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if q := w.Pending(); len(q) != 1 || q[0].Seq != 1 {
		t.Fatalf("pending %v", q)
	}
	ctx2, cancel2 := ctxTest()
	defer cancel2()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p := range tr.reqs {
			resp := db.handle(p.req)
			p.answer <- func() (*http.Response, error) { return jsonResponse(200, resp), nil }
		}
	}()
	res, err := w.Write(ctx2, insertItem("b", 1))
	close(tr.reqs)
	wg.Wait()
	if err != nil || res.Seq != 2 || db.applied != 2 {
		t.Fatalf("%+v %v, applied %d", res, err, db.applied)
	}
}
