package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapecache"
	"github.com/voltsync/volt/shapelog"
)

// serveShape answers GET/HEAD/POST /v1/shape.
//
// A long-poll with nothing to send yet waits here, in this shallow frame,
// once the request's parsing, lookup and first read have returned: the
// goroutine's stack, grown by those helpers, is then mostly unused while
// it waits, and the runtime shrinks it at the next GC (it halves a stack
// less than a quarter used), so parked polls hold small stacks.
func (s *Server) serveShape(w http.ResponseWriter, r *http.Request) {
	p, admitted := s.admit(w, r)
	if !admitted {
		return
	}
	defer p.release()
	lr, ss := s.startShape(w, r, p)
	for lr != nil {
		lr = s.resumeLog(lr, s.wait(lr.r, lr.e, lr.changed, lr.timeoutC, lr.boundsC))
	}
	if ss != nil {
		for s.sendSSE(ss) && s.awaitSSE(ss) {
		}
		ss.stop()
	}
}

// startShape parses, authorizes and resolves a request and answers it,
// except for what must wait: a read of the log or an SSE stream, which it
// returns for serveShape to wait on.
func (s *Server) startShape(w http.ResponseWriter, r *http.Request, p *permit) (*logRead, *sseStream) {
	if p.kind == kindInitial {
		w = &admittedWriter{ResponseWriter: w, p: p, limit: s.Config.MaxConcurrentExisting}
	}
	q := r.URL.Query()
	var sub *subset
	if r.Method == http.MethodPost {
		var ok bool
		if sub, ok = readPostBody(w, r); !ok {
			return nil, nil
		}
	}
	if sub == nil {
		var subErrs fieldErrors
		sub, subErrs = subsetFromQuery(q)
		if len(subErrs) > 0 {
			writeError(w, r, http.StatusBadRequest, map[string]any{"message": "Invalid request", "errors": map[string]any{"subset": subErrs}})
			return nil, nil
		}
	}
	req, errs := parseRequest(q)
	if len(errs) > 0 {
		writeInvalid(w, r, errs)
		return nil, nil
	}
	w, ok := s.authorizeRead(w, r, req, sub)
	if !ok {
		return nil, nil
	}
	if req.ruled {
		r = withRuled(r)
	}
	sh, ok := s.resolveShape(w, r, req)
	if !ok {
		return nil, nil
	}
	e, ok := s.resolveEntry(w, r, req, sh)
	if !ok {
		return nil, nil
	}
	if sub != nil {
		if s.awaitReady(w, r, e) {
			s.serveSubset(w, r, req, e, sub)
		}
		return nil, nil
	}
	if req.now {
		s.serveNow(w, r, req, e)
		return nil, nil
	}
	if req.sse {
		return nil, s.serveSSE(w, r, req, e)
	}
	return s.serveLog(w, r, req, e), nil
}

// resolveShape builds the requested shape, writing the 400/503 itself.
func (s *Server) resolveShape(w http.ResponseWriter, r *http.Request, req *request) (*shape.Shape, bool) {
	if !req.tableSet {
		writeInvalid(w, r, fieldErrors{"table": {"can't be blank"}})
		return nil, false
	}
	schema, name, err := shape.ParseRelation(req.table)
	if err != nil {
		writeInvalid(w, r, fieldErrors{"table": {err.Error()}})
		return nil, false
	}
	if systemTable(schema, name) {
		writeInvalid(w, r, fieldErrors{"table": {fmt.Sprintf("Table %s is a system table and cannot be synced", quoteQualified(schema, name))}})
		return nil, false
	}
	req.def.Schema, req.def.Table = schema, name
	sig := definitionSignature(req.def)
	// A known handle carries the table definition: no catalog round trip,
	// and for a request spelled as before, not even a parse.
	if e, ok := s.Cache.Lookup(req.handle); ok && e.Shape.Table.Schema == schema && e.Shape.Table.Name == name {
		known := e.Handle + "\x00" + sig
		if _, seen := s.knownDefs.Load(known); seen {
			return e.Shape, true
		}
		if sh, err := s.Cache.NewShape(r.Context(), req.def, e.Shape.Table); err == nil {
			if sh.Key == e.Shape.Key {
				s.knownDefs.Store(known, struct{}{})
			}
			return sh, true
		}
	}
	// A definition spelled as a recent request's, whose shape still
	// exists, is that shape: thousands of clients starting on one shape
	// cost one catalog query and one parse, not one each.
	if sh, ok := s.recentDefs.get(sig); ok {
		if e, found := s.Cache.Find(sh); found && !e.IsGone() {
			return e.Shape, true
		}
		s.recentDefs.remove(sig)
	}
	table, err := s.Cache.Table(r.Context(), schema, name)
	if errors.Is(err, shapecache.ErrTableNotFound) {
		if req.handle != "" {
			// A client of a shape whose table was dropped: Electric's
			// 409 (no successor, so no handle), which the clients
			// follow by restarting at -1, where the 400 below tells
			// them the table is gone.
			s.mustRefetch(w, r, "")
			return nil, false
		}
		msg := fmt.Sprintf("Table %s does not exist. If the table name contains capitals or special characters you must quote it.", quoteQualified(schema, name))
		writeInvalid(w, r, fieldErrors{"table": {msg}})
		return nil, false
	}
	if pe, ok := shapecache.ClientError(err); ok {
		writeInvalid(w, r, fieldErrors{"table": {pe.Message}})
		return nil, false
	}
	if err != nil {
		s.Logger.Warn("inspect table", "table", schema+"."+name, "err", err)
		writeUnavailable(w, r, 1, map[string]string{"message": "Cannot connect to the database to verify the shape. Please try again later."})
		return nil, false
	}
	sh, err := s.Cache.NewShape(r.Context(), req.def, table)
	if err != nil {
		var fe *shape.FieldError
		if errors.As(err, &fe) {
			writeInvalid(w, r, fieldErrors{fe.Field: {fe.Message}})
			return nil, false
		}
		writeInvalid(w, r, fieldErrors{"where": {err.Error()}})
		return nil, false
	}
	s.recentDefs.put(sig, sh)
	return sh, true
}

// recentDefs remembers the shapes of the latest distinct definitions, a
// bounded number of them (evicting an arbitrary one when full: the point
// is the few definitions many clients ask for at once).
type recentDefs struct {
	mu sync.Mutex
	m  map[string]*shape.Shape
}

const maxRecentDefs = 1024

func (d *recentDefs) get(sig string) (*shape.Shape, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sh, ok := d.m[sig]
	return sh, ok
}

func (d *recentDefs) put(sig string, sh *shape.Shape) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[string]*shape.Shape)
	}
	if len(d.m) >= maxRecentDefs {
		for k := range d.m {
			delete(d.m, k)
			break
		}
	}
	d.m[sig] = sh
}

func (d *recentDefs) remove(sig string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, sig)
}

// definitionSignature is the request's shape definition as spelled.
func definitionSignature(d shape.Definition) string {
	b, _ := json.Marshal(d)
	return string(b)
}

// resolveEntry finds or creates the shape; a request whose handle is unknown
// or belongs to another definition gets a 409 with the right handle.
func (s *Server) resolveEntry(w http.ResponseWriter, r *http.Request, req *request, sh *shape.Shape) (*shapecache.Entry, bool) {
	if req.handle != "" {
		if e, ok := s.Cache.Lookup(req.handle); ok && e.Shape.Key == sh.Key {
			return e, true
		}
	}
	e, ok := s.getOrCreate(w, r, sh)
	if !ok {
		return nil, false
	}
	if req.handle != "" {
		s.mustRefetch(w, r, e.Handle)
		return nil, false
	}
	return e, true
}

// mustRefetch answers 409 with the handle to use next ("" when unknown).
func (s *Server) mustRefetch(w http.ResponseWriter, r *http.Request, handle string) {
	h := w.Header()
	if handle != "" {
		h.Set(volt.HeaderHandle, handle)
		h.Set("cache-control", "public, max-age=60, must-revalidate")
	} else {
		h.Set("cache-control", "public, max-age=1, must-revalidate")
	}
	h.Set("content-type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusConflict)
	_, _ = w.Write([]byte(shape.MustRefetch))
}

// refetchAfterRotation answers 409 for a shape removed while serving it,
// with its successor's handle for the client to follow.
func (s *Server) refetchAfterRotation(w http.ResponseWriter, r *http.Request, e *shapecache.Entry) {
	next := ""
	if ne, err := s.Cache.Successor(r.Context(), e); err == nil {
		next = ne.Handle
	}
	s.mustRefetch(w, r, next)
}

// serveNow answers offset=now: the shape's current head, no data.
func (s *Server) serveNow(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry) {
	if !s.awaitReady(w, r, e) {
		return
	}
	latest := e.Latest()
	s.setLogHeaders(w, req, e, latest, true, false)
	w.Header().Set("etag", s.uniqueETag(e.Handle, req.rawOffset, latest))
	s.writeBody(w, r, [][]byte{shape.UpToDate(s.globalLSN(e))})
}

// awaitReady waits for e's snapshot to complete; false means a response was written.
func (s *Server) awaitReady(w http.ResponseWriter, r *http.Request, e *shapecache.Entry) bool {
	select {
	case <-e.Ready():
	case <-r.Context().Done():
		s.interrupted(w, r)
		return false
	}
	if e.IsGone() {
		s.goneResponse(w, r, e)
		return false
	}
	return true
}

// readResult is what one response serves from the log: entries read into
// memory (shared with identical requests), or, for a page larger than
// streamThreshold, a located page streamed from the log's file.
type readResult struct {
	shapelog.ReadResult
	timedOut bool
	page     *shapelog.Page
	release  func() // set with page: lets the log close again
	// written: page is the written part of the snapshot chunk being
	// written; the response goes on with the rest as it is written.
	written bool
	// processed is the cache's processed LSN read before the log: every
	// transaction up to it is in the log as read, so a live answer may
	// report it as global_last_seen_lsn even when its last entry's offset
	// is lower (a move's entries sit at the previous entry's LSN).
	processed uint64
}

// streamThreshold is the page size above which a response streams the
// page from the file instead of reading it whole: a client that reads
// slowly (or stops) then pins a bounded buffer, not a chunk of the log.
const streamThreshold = 128 << 10

// logRead is a read of a shape's log that may wait: for snapshot chunks,
// for an offset the server has not reached yet and, for a live request,
// for new entries until the long-poll timeout.
type logRead struct {
	w    http.ResponseWriter
	r    *http.Request
	req  *request
	e    *shapecache.Entry
	live bool

	deadline      *time.Timer // the long-poll timeout (live requests)
	bounds        *time.Timer // started once the offset is out of bounds
	boundsExpired bool
	last          shapelog.ReadResult // the last read, answered on timeout

	// What the next wait is for (set by step).
	changed           <-chan struct{}
	timeoutC, boundsC <-chan time.Time
}

func (s *Server) newLogRead(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry, live bool, timeout time.Duration) *logRead {
	return &logRead{w: w, r: r, req: req, e: e, live: live, deadline: time.NewTimer(timeout)}
}

func (lr *logRead) stop() {
	lr.deadline.Stop()
	if lr.bounds != nil {
		lr.bounds.Stop()
	}
}

// read reads after offset, waiting in this frame (see logRead) until
// there is something to answer. ok=false: a response was written.
func (s *Server) read(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry, live bool, timeout time.Duration) (readResult, bool) {
	lr := s.newLogRead(w, r, req, e, live, timeout)
	defer lr.stop()
	for {
		if res, ok, done := s.step(lr); done {
			return res, ok
		}
		if res, ok, done := s.afterWait(lr, s.wait(r, e, lr.changed, lr.timeoutC, lr.boundsC)); done {
			return res, ok
		}
	}
}

// step reads after lr's offset. done: the result to answer (ok=false: a
// response was written); otherwise lr's channels say what to wait for.
func (s *Server) step(lr *logRead) (res readResult, ok, done bool) {
	w, r, req, e := lr.w, lr.r, lr.req, lr.e
	for {
		if e.IsGone() {
			s.goneResponse(w, r, e)
			return readResult{}, false, true
		}
		changed := e.Changed()
		processed := s.Cache.LastProcessedLSN()
		var res shapelog.ReadResult
		p, release, err := e.Locate(req.offset)
		switch {
		case err != nil:
			if errors.Is(err, shapelog.ErrSnapshotPending) {
				if res, ok := s.locateWritten(lr); ok {
					return res, true, true
				}
			}
			// Read fails the same way (ErrSnapshotPending, a gone shape),
			// as one read shared with identical requests.
			res, err = s.readShared(e, req.offset, changed, nil)
		case p.Bytes > streamThreshold:
			return readResult{ReadResult: shapelog.ReadResult{End: p.End, AtHead: p.AtHead}, page: &p, release: release, processed: processed}, true, true
		default:
			res, err = s.readShared(e, req.offset, changed, &p)
			release()
		}
		lr.changed, lr.timeoutC, lr.boundsC, lr.last = changed, nil, nil, res
		if lr.bounds != nil {
			lr.boundsC = lr.bounds.C
		}
		switch {
		case errors.Is(err, shapelog.ErrSnapshotPending):
		case err != nil:
			if e.IsGone() {
				continue
			}
			s.Logger.Error("read shape log", "handle", e.Handle, "err", err)
			writeError(w, r, http.StatusInternalServerError, map[string]string{"error": "Internal server error"})
			return readResult{}, false, true
		case s.outOfBounds(req.offset, e):
			if lr.boundsExpired {
				writeInvalid(w, r, fieldErrors{"offset": {"out of bounds for this shape"}})
				return readResult{}, false, true
			}
			if lr.bounds == nil {
				lr.bounds = time.NewTimer(s.Config.LongPollTimeout / 2)
				lr.boundsC = lr.bounds.C
			}
		case lr.live && len(res.Entries) == 0:
			lr.timeoutC = lr.deadline.C
		default:
			return readResult{ReadResult: res, processed: processed}, true, true
		}
		return readResult{}, false, false
	}
}

// locateWritten returns, for a request of a snapshot chunk that is still
// being written, the part of it written so far, when there is some: the
// response starts with it and follows the snapshot (writeWritten) instead
// of waiting for the whole chunk. Not for SSE or live requests.
func (s *Server) locateWritten(lr *logRead) (readResult, bool) {
	o := lr.req.offset
	if lr.live || lr.req.sse || !(o.IsBeforeAll() || o.InSnapshot() && o.Op != volt.OpInf) {
		return readResult{}, false
	}
	p, release, err := lr.e.LocateWritten(o, 0)
	if err != nil {
		return readResult{}, false
	}
	if p.Bytes == 0 {
		release()
		return readResult{}, false
	}
	return readResult{ReadResult: shapelog.ReadResult{End: p.End}, page: &p, release: release, written: true}, true
}

// afterWait applies the outcome of a wait: done when it ends the read.
func (s *Server) afterWait(lr *logRead, outcome int) (res readResult, ok, done bool) {
	switch outcome {
	case timedOut:
		return readResult{ReadResult: lr.last, timedOut: true}, true, true
	case boundsTimedOut:
		lr.boundsExpired = true
	case cancelled:
		s.interrupted(lr.w, lr.r)
		return readResult{}, false, true
	}
	return readResult{}, false, false
}

// Outcomes of wait.
const (
	woke = iota
	timedOut
	boundsTimedOut
	cancelled
)

// wait blocks until the log changes, the shape goes, a timer fires or the
// request ends. A wait with a timeout is a parked long-poll (s.parked).
func (s *Server) wait(r *http.Request, e *shapecache.Entry, changed <-chan struct{}, timeout, bounds <-chan time.Time) int {
	if timeout != nil {
		s.parked.Add(1)
		defer s.parked.Add(-1)
	}
	select {
	case <-changed:
	case <-e.Gone():
	case <-timeout:
		return timedOut
	case <-bounds:
		return boundsTimedOut
	case <-r.Context().Done():
		return cancelled
	}
	return woke
}

// interrupted answers a request whose wait was cut short: by the server
// shutting down (a 503 the client retries, never a bare 200), or by the
// client leaving (then nothing reads the answer).
func (s *Server) interrupted(w http.ResponseWriter, r *http.Request) {
	writeUnavailable(w, r, 1, map[string]string{"message": "The server is shutting down, please retry"})
}

// goneResponse answers for a shape that was removed: 400 when its snapshot
// failed because of the shape itself, 503 when it failed otherwise, or 409
// towards its successor.
func (s *Server) goneResponse(w http.ResponseWriter, r *http.Request, e *shapecache.Entry) {
	if err := e.Err(); err != nil {
		if _, ok := shapecache.ClientError(err); ok {
			s.queryFailed(w, r, e, err, false)
			return
		}
		writeUnavailable(w, r, 1, map[string]string{"message": "Failed to create shape, please retry"})
		return
	}
	s.refetchAfterRotation(w, r, e)
}

// queryFailed answers a shape's snapshot or subset query that Postgres
// refused. When the request caused it (shapecache.ClientError: a cast
// that fails on a row, division by zero, no access to the table) it is a
// 400 with Postgres' message, which retrying cannot fix; otherwise a 503.
// Under read rules the message is withheld: it may quote a value of a row
// the rule hides (Postgres may evaluate the request's where clause on rows
// the rule's check then excludes).
func (s *Server) queryFailed(w http.ResponseWriter, r *http.Request, e *shapecache.Entry, err error, subset bool) {
	pe, ok := shapecache.ClientError(err)
	if !ok {
		s.logQueryError("subset snapshot failed", e, err)
		writeUnavailable(w, r, 10, map[string]string{"message": "Subset snapshot failed, please retry"})
		return
	}
	msg := pe.Message
	if ruled(r) && pe.Code != "57014" { // a timeout's message is volt's own
		msg = fmt.Sprintf("Postgres refused the shape's query (SQLSTATE %s); its message is withheld because it may quote rows that are not readable", pe.Code)
	}
	field := "where"
	switch pe.Code {
	case "42501", "42P01", "42809", "42704":
		field = "table"
	}
	if subset && field == "where" {
		writeError(w, r, http.StatusBadRequest, map[string]any{"message": "Invalid request", "errors": map[string]any{"subset": fieldErrors{field: {msg}}}})
		return
	}
	writeInvalid(w, r, fieldErrors{field: {msg}})
}

// logQueryError logs a failed shape query without the error's message when
// the request caused it (the message may quote row values).
func (s *Server) logQueryError(msg string, e *shapecache.Entry, err error, args ...any) {
	args = append(args, "handle", e.Handle)
	if pe, ok := shapecache.ClientError(err); ok {
		s.Logger.Info(msg, append(args, "sqlstate", pe.Code)...)
		return
	}
	s.Logger.Warn(msg, append(args, "err", err)...)
}

// outOfBounds reports a request offset past everything the shape (and the
// server) has seen; it may still become valid as replication catches up.
func (s *Server) outOfBounds(o volt.Offset, e *shapecache.Entry) bool {
	if o.IsBeforeAll() || o.InSnapshot() {
		return false
	}
	if !e.Latest().Less(o) {
		return false
	}
	return o.LSN > s.Cache.LastProcessedLSN()
}

// globalLSN is global_last_seen_lsn for responses without data.
func (s *Server) globalLSN(e *shapecache.Entry) uint64 {
	if g := s.Cache.LastProcessedLSN(); g > 0 {
		return g
	}
	return e.LastTxLSN()
}

// serveLog answers a non-SSE request (initial, catch-up or long-poll).
// When the read must wait it returns it, for serveShape to wait on and
// resume with resumeLog; nil once answered.
func (s *Server) serveLog(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry) *logRead {
	return s.advanceLog(s.newLogRead(w, r, req, e, req.live, s.Config.LongPollTimeout))
}

// resumeLog carries on with a read after its wait.
func (s *Server) resumeLog(lr *logRead, outcome int) *logRead {
	if res, ok, done := s.afterWait(lr, outcome); done {
		lr.stop()
		if ok {
			s.answerLog(lr.w, lr.r, lr.req, lr.e, res)
		}
		return nil
	}
	return s.advanceLog(lr)
}

// advanceLog reads again: it answers, or returns lr to wait on.
func (s *Server) advanceLog(lr *logRead) *logRead {
	res, ok, done := s.step(lr)
	if !done {
		return lr
	}
	lr.stop()
	if ok {
		s.answerLog(lr.w, lr.r, lr.req, lr.e, res)
	}
	return nil
}

// answerLog writes the response of a log read.
func (s *Server) answerLog(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry, res readResult) {
	if res.release != nil {
		defer res.release()
	}
	if res.timedOut {
		if s.Ready != nil && !s.Ready() {
			writeUnavailable(w, r, 10, map[string]string{"message": "Replication stream is not connected"})
			return
		}
		s.setLogHeaders(w, req, e, req.offset, true, false)
		w.Header().Set("etag", s.uniqueETag(e.Handle, req.rawOffset, req.offset))
		s.writeBody(w, r, [][]byte{shape.UpToDate(s.globalLSN(e))})
		return
	}
	upToDate := res.AtHead && !req.offset.IsBeforeAll()
	body := res.Entries
	var tail []byte
	if upToDate {
		g := max(res.End.LSN, res.processed)
		if !req.live && s.Cache.LastProcessedLSN() > g {
			g = s.Cache.LastProcessedLSN()
		}
		tail = shape.UpToDate(g)
		body = append(body[:len(body):len(body)], tail)
	}
	s.setLogHeaders(w, req, e, res.End, upToDate, true)
	etag := `"` + e.Handle + ":" + req.rawOffset + ":" + res.End.String() + `"`
	w.Header().Set("etag", etag)
	if etagMatches(r, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if res.written {
		s.writeWritten(w, r, e, req.offset, res.page)
		return
	}
	if res.page != nil {
		s.writeStream(w, r, res.page, tail)
		return
	}
	s.writeBody(w, r, body)
}

// writeStream writes a located page as one JSON array (plus tail, when
// set), reading the log's file through a bounded buffer. The length is
// not known up front, so the body is chunked.
func (s *Server) writeStream(w http.ResponseWriter, r *http.Request, p *shapelog.Page, tail []byte) {
	w.Header().Set("content-type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	bw, sw := s.bodyWriter(w, bodyBuffer)
	_ = bw.WriteByte('[')
	n := 0
	err := p.Each(make([]byte, bodyBuffer), func(m []byte) error {
		if n > 0 {
			_ = bw.WriteByte(',')
		}
		n++
		_, err := bw.Write(m)
		return err
	})
	if err != nil {
		if sw.err == nil {
			// Reading the log failed after the headers went out: all that
			// is left is to cut the response short, which the client sees
			// as a failed request and retries.
			s.Logger.Warn("stream shape log", "err", err)
			panic(http.ErrAbortHandler)
		}
		return // the client stopped reading; net/http closes the connection
	}
	if tail != nil {
		if n > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(tail)
	}
	_ = bw.WriteByte(']')
	_ = bw.Flush()
}

// writeWritten writes a snapshot chunk that is still being written,
// starting with the located part p: each further part is sent as the
// snapshot writer makes it readable, and the array is closed once the
// chunk is sealed. If the shape goes (its snapshot failed) or the
// server stops before that, the response is cut short, so the client
// sees a failed request and retries; it never gets a partial chunk as a
// whole one.
func (s *Server) writeWritten(w http.ResponseWriter, r *http.Request, e *shapecache.Entry, after volt.Offset, p *shapelog.Page) {
	w.Header().Set("content-type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	bw, sw := s.bodyWriter(w, bodyBuffer)
	abort := func(err error) {
		if sw.err == nil {
			if err != nil && !errors.Is(err, shapecache.ErrShapeGone) {
				s.Logger.Warn("stream snapshot chunk", "handle", e.Handle, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
	_ = bw.WriteByte('[')
	buf := make([]byte, bodyBuffer)
	n := 0
	write := func(m []byte) error {
		if n > 0 {
			_ = bw.WriteByte(',')
		}
		n++
		_, err := bw.Write(m)
		return err
	}
	page, release := *p, func() {} // the caller releases p
	for {
		err := page.Each(buf, write)
		release()
		if err != nil {
			abort(err)
			return
		}
		if !page.Partial {
			break
		}
		next, err := s.nextWritten(e, r, bw, sw, after, page.Resume())
		if err != nil {
			abort(err)
			return
		}
		page, release = next.page, next.release
	}
	_ = bw.WriteByte(']')
	_ = bw.Flush()
}

// writtenPart is a further part of a chunk being written.
type writtenPart struct {
	page    shapelog.Page
	release func()
}

// nextWritten waits until more of the snapshot chunk after `after` than
// what ends at file position from is readable, and locates it; what the
// response buffered is sent to the client before waiting.
func (s *Server) nextWritten(e *shapecache.Entry, r *http.Request, bw *bufio.Writer, sw *stallWriter, after volt.Offset, from int64) (writtenPart, error) {
	for {
		changed := e.Changed()
		p, release, err := e.LocateWritten(after, from)
		if err != nil {
			return writtenPart{}, err
		}
		if p.Bytes > 0 || !p.Partial {
			return writtenPart{page: p, release: release}, nil
		}
		release()
		if bw.Flush() != nil || sw.Flush() != nil {
			return writtenPart{}, sw.err
		}
		select {
		case <-changed:
		case <-e.Gone():
			return writtenPart{}, shapecache.ErrShapeGone
		case <-r.Context().Done():
			return writtenPart{}, r.Context().Err()
		}
	}
}

func (s *Server) uniqueETag(handle, reqOffset string, end volt.Offset) string {
	return `"` + handle + ":" + reqOffset + ":" + end.String() + ":" + strconv.FormatInt(time.Now().UnixNano()+s.etagSeq.Add(1), 10) + `"`
}

// setLogHeaders sets the protocol and cache headers of a 200/304.
func (s *Server) setLogHeaders(w http.ResponseWriter, req *request, e *shapecache.Entry, end volt.Offset, upToDate, hasData bool) {
	h := w.Header()
	h.Set(volt.HeaderHandle, e.Handle)
	h.Set(volt.HeaderOffset, end.String())
	h.Set(volt.HeaderHasData, strconv.FormatBool(hasData))
	if upToDate {
		h.Set(volt.HeaderUpToDate, "")
	}
	if req.live {
		h.Set(volt.HeaderCursor, nextCursor(time.Now(), s.Config.LongPollTimeout, req.cursor))
	} else {
		h.Set(volt.HeaderSchema, e.Shape.Schema())
	}
	switch {
	case req.rawOffset == "-1":
		h.Set("cache-control", "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746")
	case req.live && req.sse:
		h.Set("cache-control", "public, max-age="+strconv.Itoa(int(s.Config.SSETimeout/time.Second)-1))
	case req.live:
		h.Set("cache-control", "public, max-age=5, stale-while-revalidate=5")
	default:
		h.Set("cache-control", fmt.Sprintf("public, max-age=%d, stale-while-revalidate=%d", s.Config.CacheMaxAge, s.Config.CacheStaleAge))
	}
}

// writeBody writes the messages as one JSON array, through a bounded
// buffer (the messages are not copied into one body) under the stall
// timeout.
func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, msgs [][]byte) {
	w.Header().Set("content-type", "application/json; charset=utf-8")
	n := 2
	for _, m := range msgs {
		n += len(m) + 1
	}
	n -= boolInt(len(msgs) > 0)
	w.Header().Set("content-length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	bw, _ := s.bodyWriter(w, n)
	_ = bw.WriteByte('[')
	for i, m := range msgs {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		if _, err := bw.Write(m); err != nil {
			return
		}
	}
	_ = bw.WriteByte(']')
	_ = bw.Flush()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func quoteQualified(schema, name string) string {
	return postgres.QuoteIdent(schema) + "." + postgres.QuoteIdent(name)
}
