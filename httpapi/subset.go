package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapecache"
)

// maxBodyBytes bounds a POST /v1/shape body.
const maxBodyBytes = 1 << 20

// subset is a subset snapshot request (subset__* parameters or a POST body).
type subset struct {
	Where   string
	Params  map[string]string
	Limit   *int
	Offset  *int
	OrderBy string
}

// subsetFromQuery reads the subset__* parameters; nil when there are none.
func subsetFromQuery(q url.Values) (*subset, fieldErrors) {
	present := false
	for k := range q {
		if strings.HasPrefix(k, "subset__") {
			present = true
		}
	}
	if !present {
		return nil, nil
	}
	errs := fieldErrors{}
	sub := &subset{Where: q.Get("subset__where"), OrderBy: q.Get("subset__order_by")}
	if p := q.Get("subset__params"); p != "" {
		params, err := decodeParams([]byte(p))
		if err != nil {
			errs.add("params", "is invalid")
		}
		sub.Params = params
	}
	sub.Limit = intParam(q, "subset__limit", 1, errs, "limit")
	sub.Offset = intParam(q, "subset__offset", 0, errs, "offset")
	if msg := subsetTextError(sub); msg != "" {
		errs.add("subset", msg)
	}
	return sub, errs
}

func intParam(q url.Values, key string, least int, errs fieldErrors, field string) *int {
	if !q.Has(key) {
		return nil
	}
	n, err := strconv.Atoi(q.Get(key))
	if err != nil || n < least {
		errs.add(field, fmt.Sprintf("must be an integer greater than or equal to %d", least))
		return nil
	}
	return &n
}

// decodeParams accepts {"1":"a","2":5} (numbers are used as written).
func decodeParams(b []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			out[k] = s
			continue
		}
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return nil, fmt.Errorf("parameter %s must be a string or a number", k)
		}
		out[k] = n.String()
	}
	return out, nil
}

// bodyFields are the keys a POST /v1/shape body may hold: the subset's.
// where_expr and order_by_expr are the structured forms the TypeScript
// client sends next to where and order_by; volt reads the strings and
// ignores them. Shape parameters (table, columns, where of the shape, …)
// come from the URL only: an authorising proxy decides them there, and a
// body must not be able to change what it decided.
var bodyFields = map[string]bool{
	"where": true, "params": true, "order_by": true, "limit": true, "offset": true,
	"where_expr": true, "order_by_expr": true,
}

// bodyError is a refused POST body: the status and JSON body to answer.
type bodyError struct {
	status int
	body   any
}

// decodeSubsetBody parses a POST /v1/shape body: {"where": …, "params":
// {…}, "order_by": …, "limit": n, "offset": n} or the same inside
// {"subset": {…}}. An empty body is no subset (nil, nil).
func decodeSubsetBody(body []byte) (*subset, *bodyError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			return nil, &bodyError{http.StatusBadRequest, map[string]string{"error": "Invalid JSON in request body", "details": err.Error()}}
		}
		return nil, &bodyError{http.StatusBadRequest, map[string]string{"error": "Request body must be a JSON object"}}
	}
	fields := top
	if inner, ok := top["subset"]; ok {
		for k := range top {
			if k != "subset" {
				return nil, bodyFieldError(k, `can't be set next to "subset" in the request body`)
			}
		}
		fields = nil
		if err := json.Unmarshal(inner, &fields); err != nil || fields == nil {
			return nil, &bodyError{http.StatusBadRequest, map[string]string{"error": "subset in the request body must be a JSON object"}}
		}
	}
	for k := range fields {
		if !bodyFields[k] {
			return nil, bodyFieldError(k, "can't be set in the request body: it holds only where, params, order_by, limit and offset (shape parameters go in the URL)")
		}
	}
	sub := &subset{}
	for k, v := range fields {
		var err error
		switch k {
		case "where":
			err = json.Unmarshal(v, &sub.Where)
		case "order_by":
			err = json.Unmarshal(v, &sub.OrderBy)
		case "params":
			sub.Params, err = decodeParams(v)
		case "limit":
			err = json.Unmarshal(v, &sub.Limit)
		case "offset":
			err = json.Unmarshal(v, &sub.Offset)
		}
		if err != nil {
			return nil, &bodyError{http.StatusBadRequest, map[string]any{"message": "Invalid request", "errors": fieldErrors{"subset": {k + " is invalid"}}}}
		}
	}
	if msg := subsetTextError(sub); msg != "" {
		return nil, &bodyError{http.StatusBadRequest, map[string]any{"message": "Invalid request", "errors": fieldErrors{"subset": {msg}}}}
	}
	return sub, nil
}

// subsetTextError says which of the subset's strings Postgres would refuse
// as text ("" when none).
func subsetTextError(sub *subset) string {
	if msg := badText(sub.Where); msg != "" {
		return "where " + msg
	}
	if msg := badText(sub.OrderBy); msg != "" {
		return "order_by " + msg
	}
	for _, v := range sub.Params {
		if msg := badText(v); msg != "" {
			return "params " + msg
		}
	}
	return ""
}

func bodyFieldError(field, msg string) *bodyError {
	return &bodyError{http.StatusBadRequest, map[string]any{"message": "Invalid request", "errors": fieldErrors{field: {msg}}}}
}

// readPostBody reads and decodes a POST /v1/shape body. ok=false: a
// response was written.
func readPostBody(w http.ResponseWriter, r *http.Request) (*subset, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, map[string]string{"error": "Invalid JSON in request body", "details": err.Error()})
		return nil, false
	}
	if len(body) > maxBodyBytes {
		writeError(w, r, http.StatusRequestEntityTooLarge, map[string]string{"error": "Request body too large"})
		return nil, false
	}
	sub, berr := decodeSubsetBody(body)
	if berr != nil {
		writeError(w, r, berr.status, berr.body)
		return nil, false
	}
	return sub, true
}

// subsetOffset is the electric-offset of a subset response. The TypeScript
// client moves its live stream to it; answering with the shape's head would
// make a stream that is behind skip the live changes in between (rows that
// no snapshot covers then never arrive). So a request made from a position in
// the log gets that position back; "now" and -1 get the head, which is what a
// cold-started stream needs. Changes the stream then reads again for rows the
// subset already holds are filtered by the client with the snapshot's xids.
func subsetOffset(req *request, e *shapecache.Entry) volt.Offset {
	latest := e.Latest()
	if req.now || req.offset.IsBeforeAll() || latest.Less(req.offset) {
		return latest
	}
	return req.offset
}

// serveSubset answers a subset snapshot: rows of the shape that also match
// the subset's where clause, ordered and paged, with the snapshot's identity.
func (s *Server) serveSubset(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry, sub *subset) {
	s.runSubset(w, r, e, shapecache.Subset{
		Where: sub.Where, Params: sub.Params, OrderBy: sub.OrderBy, Limit: sub.Limit, Offset: sub.Offset,
		Queryable: req.def.Queryable, InfoOnly: r.Method == http.MethodHead,
	}, subsetOffset(req, e))
}

// runSubset streams a subset snapshot: each row is written to the response
// as Postgres returns it, through a bounded buffer under the stall
// timeout, so a subset costs a buffer, not its rows, whatever its size.
// The status goes out with the first buffer's worth of body: a query that
// fails before (every failure of a subset under bodyBuffer bytes) is
// answered with a proper error; one that fails after is cut short, which
// the client sees as a failed request.
func (s *Server) runSubset(w http.ResponseWriter, r *http.Request, e *shapecache.Entry, sub shapecache.Subset, offset volt.Offset) {
	mark := rand.Int64N(1 << 31)
	var snap volt.Snapshot
	var lsn uint64
	ls := &lazyStart{ResponseWriter: w, start: func() {
		h := w.Header()
		h.Set("cache-control", "no-cache")
		h.Set(volt.HeaderSnapshot, "true")
		h.Set(volt.HeaderHandle, e.Handle)
		h.Set(volt.HeaderOffset, offset.String())
		h.Set(volt.HeaderSchema, e.Shape.Schema())
		h.Set("content-type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
	}}
	bw, sw := s.bodyWriter(ls, bodyBuffer)
	opened := false
	open := func() {
		opened = true
		_, _ = bw.WriteString(`{"metadata":`)
		_, _ = bw.Write(shape.SubsetMetadata(snap, mark, lsn))
		_, _ = bw.WriteString(`,"data":[`)
	}
	rows := 0
	err := s.Cache.Subset(r.Context(), e, sub,
		func(si volt.Snapshot, at uint64) error { snap, lsn = si, at; return nil },
		func(raw [][]byte) error {
			if !opened {
				open()
			} else {
				_ = bw.WriteByte(',')
			}
			rows++
			_, err := bw.Write(e.Shape.SubsetRow(raw, mark))
			return err
		})
	var invalid *shapecache.SubsetError
	switch {
	case errors.As(err, &invalid):
		writeError(w, r, http.StatusBadRequest, map[string]any{"message": "Invalid request", "errors": map[string]any{"subset": invalid.Fields}})
		return
	case err != nil && !ls.started:
		s.queryFailed(w, r, e, err, true)
		return
	case err != nil && sw.err != nil:
		return // the client stopped reading; net/http closes the connection
	case err != nil:
		s.logQueryError("subset snapshot failed after some rows", e, err, "rows", rows)
		panic(http.ErrAbortHandler)
	}
	if sub.InfoOnly {
		ls.begin()
		return
	}
	if !opened {
		open()
	}
	_, _ = bw.WriteString("]}")
	_ = bw.Flush()
}

// lazyStart sends a 200 with the first bytes of the body (start sets its
// headers), so that a response can still become an error until then.
type lazyStart struct {
	http.ResponseWriter
	start   func()
	started bool
}

func (l *lazyStart) begin() {
	if !l.started {
		l.started = true
		l.start()
	}
}

func (l *lazyStart) Write(p []byte) (int, error) {
	l.begin()
	return l.ResponseWriter.Write(p)
}

func (l *lazyStart) Unwrap() http.ResponseWriter { return l.ResponseWriter }
