package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/voltsync/volt"
)

// fakeDB is a model of the write endpoint's contract (docs/MUTATIONS.md)
// over one table items(id text primary key, v int): seqs applied once and
// in order, stored results replayed, dependent rejections within a
// request, and a log of committed changes as a shape would carry them.
type fakeDB struct {
	mu      sync.Mutex
	lastSeq map[string]int64
	stored  map[string]map[int64]volt.MutationResult
	rows    map[string]Row // by id
	xid     uint32
	log     []*Change
	applied int // transactions applied (client and other writers)
	// forbid, if set, rejects a transaction that would otherwise apply.
	forbid func(seq int64) bool
}

func newFakeDB() *fakeDB {
	return &fakeDB{lastSeq: map[string]int64{}, stored: map[string]map[int64]volt.MutationResult{},
		rows: map[string]Row{}, xid: 100}
}

func itemKey(id string) string { return `"public"."items"/"` + id + `"` }

func mutID(m volt.Mutation) string {
	if id, ok := m.Key["id"].(string); ok {
		return id
	}
	id, _ := m.Values["id"].(string)
	return id
}

func mutV(m volt.Mutation) int32 {
	switch v := m.Values["v"].(type) {
	case int:
		return int32(v)
	case float64:
		return int32(v)
	case json.Number:
		n, _ := v.Int64()
		return int32(n)
	}
	return 0
}

// commitLocked applies muts as one transaction and logs its changes.
func (db *fakeDB) commitLocked(muts []volt.Mutation) uint32 {
	db.xid++
	db.applied++
	for _, m := range muts {
		id := mutID(m)
		c := &Change{Key: itemKey(id), Txids: []uint32{db.xid}, Relation: []string{"public", "items"}, LSN: uint64(db.xid)}
		switch m.Op {
		case volt.OpInsert:
			db.rows[id] = Row{"id": id, "v": mutV(m)}
			c.Operation, c.Value = volt.OpInsert, Row{"id": id, "v": mutV(m)}
		case volt.OpUpdate:
			r := db.rows[id].clone()
			r["v"] = mutV(m)
			db.rows[id] = r
			c.Operation, c.Value = volt.OpUpdate, Row{"id": id, "v": mutV(m)}
		case volt.OpDelete:
			delete(db.rows, id)
			c.Operation, c.Value = volt.OpDelete, Row{"id": id}
		}
		db.log = append(db.log, c)
	}
	return db.xid
}

// handle answers one request the way volt does.
func (db *fakeDB) handle(req volt.MutationRequest) volt.MutationResponse {
	db.mu.Lock()
	defer db.mu.Unlock()
	var out volt.MutationResponse
	rejected := map[string]int64{}
	var stop *volt.MutationResult
	for _, tx := range req.Transactions {
		if stop != nil {
			r := *stop
			r.Seq = tx.Seq
			out.Results = append(out.Results, r)
			continue
		}
		last := db.lastSeq[req.ClientID]
		if tx.Seq <= last {
			if r, ok := db.stored[req.ClientID][tx.Seq]; ok {
				r.Replayed, r.LSN = true, ""
				out.Results = append(out.Results, r)
				for _, m := range tx.Mutations {
					if r.Status == volt.StatusRejected {
						rejected[mutID(m)] = tx.Seq
					}
				}
				continue
			}
		}
		if tx.Seq != last+1 {
			r := volt.MutationResult{Seq: tx.Seq, Status: volt.StatusRejected, Code: volt.CodeOutOfOrder, ExpectedSeq: last + 1}
			stop = &r
			out.Results = append(out.Results, r)
			continue
		}
		res := volt.MutationResult{Seq: tx.Seq}
		for _, m := range tx.Mutations {
			if s, ok := rejected[mutID(m)]; ok {
				res.Status, res.Code, res.Message = volt.StatusRejected, volt.CodeDependent, fmt.Sprintf("depends on rejected seq %d", s)
				break
			}
		}
		if res.Status == "" {
			exists := map[string]bool{}
			for id := range db.rows {
				exists[id] = true
			}
			for _, m := range tx.Mutations {
				id := mutID(m)
				switch {
				case m.Op == volt.OpInsert && exists[id]:
					res.Status, res.Code = volt.StatusRejected, volt.CodeConstraint
				case m.Op != volt.OpInsert && !exists[id]:
					res.Status, res.Code = volt.StatusRejected, volt.CodeConflict
				}
				exists[id] = m.Op != volt.OpDelete
			}
			if res.Status == "" && db.forbid != nil && db.forbid(tx.Seq) {
				res.Status, res.Code = volt.StatusRejected, volt.CodeForbidden
			}
		}
		if res.Status == volt.StatusRejected {
			for _, m := range tx.Mutations {
				rejected[mutID(m)] = tx.Seq
			}
		} else {
			res.Status = volt.StatusAccepted
			res.Txid = uint64(db.commitLocked(tx.Mutations))
			res.LSN = fmt.Sprint(db.xid)
		}
		db.lastSeq[req.ClientID] = tx.Seq
		if db.stored[req.ClientID] == nil {
			db.stored[req.ClientID] = map[int64]volt.MutationResult{}
		}
		db.stored[req.ClientID][tx.Seq] = res
		out.Results = append(out.Results, res)
	}
	return out
}

func decodeMutationRequest(r *http.Request) (volt.MutationRequest, error) {
	var req volt.MutationRequest
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return req, err
	}
	return req, json.Unmarshal(b, &req)
}

func jsonResponse(status int, v any) *http.Response {
	b, _ := json.Marshal(v)
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b))}
}

var errLostResponse = errors.New("connection reset after the request was sent")

// pendingReq is a request held by a chanTransport until the test answers.
type pendingReq struct {
	req    volt.MutationRequest
	answer chan func() (*http.Response, error)
}

// chanTransport hands every request to the test through reqs.
type chanTransport struct{ reqs chan *pendingReq }

func (t *chanTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	req, err := decodeMutationRequest(r)
	if err != nil {
		return nil, err
	}
	p := &pendingReq{req: req, answer: make(chan func() (*http.Response, error), 1)}
	select {
	case t.reqs <- p:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	select {
	case f := <-p.answer:
		return f()
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

func ctxTest() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60e9)
}
