package httpapi

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapecache"
)

// Admission control, as Electric's (Electric.AdmissionControl and
// ServeShapePlug.check_admission): every GET/HEAD/POST shape request holds
// one permit of its kind until it ends, and a request past its kind's cap
// gets 503 with retry-after instead of queueing.
//
//   - "initial": no handle, a handle this server does not know, or
//     offset=-1. These may create shapes and start snapshots, the expensive
//     work the small cap (300) protects.
//   - "existing": everything else, live long-polls and SSE streams included
//     for as long as they are parked (Electric counts them the same way).
//
// An initial request moves to "existing" once its body is ready to be
// written, so clients slow to read their first chunk (or parked on it)
// never use up the initial cap. The existing cap (10,000) must therefore
// be larger than the number of live clients expected at once.

// Permit kinds.
const (
	kindInitial  = "initial"
	kindExisting = "existing"
)

// admission counts the requests holding a permit of each kind.
type admission struct {
	initial  atomic.Int64
	existing atomic.Int64
}

// permit is one request's admission; release it exactly once.
type permit struct {
	a    *admission
	kind string
}

func (a *admission) counter(kind string) *atomic.Int64 {
	if kind == kindInitial {
		return &a.initial
	}
	return &a.existing
}

// acquire takes a permit of kind unless limit (negative: none) is reached.
func (a *admission) acquire(kind string, limit int) (*permit, bool) {
	c := a.counter(kind)
	if n := c.Add(1); limit >= 0 && n > int64(limit) {
		c.Add(-1)
		return nil, false
	}
	return &permit{a: a, kind: kind}, true
}

// promote moves an initial permit to existing when that kind has room;
// otherwise the request keeps its initial permit.
func (p *permit) promote(existingLimit int) {
	if p == nil || p.kind != kindInitial {
		return
	}
	if n := p.a.existing.Add(1); existingLimit >= 0 && n > int64(existingLimit) {
		p.a.existing.Add(-1)
		return
	}
	p.a.initial.Add(-1)
	p.kind = kindExisting
}

func (p *permit) release() {
	if p != nil {
		p.a.counter(p.kind).Add(-1)
	}
}

// admissionKind classifies a request from its query string only (before
// any parsing): Electric looks at the handle alone; offset=-1 also counts
// as initial here, since it reads a whole snapshot chunk.
func (s *Server) admissionKind(q url.Values) string {
	if q.Get(volt.ParamOffset) == "-1" {
		return kindInitial
	}
	h := q.Get(volt.ParamHandle)
	if h == "" {
		return kindInitial
	}
	if _, ok := s.Cache.Lookup(h); !ok {
		return kindInitial
	}
	return kindExisting
}

// admit takes the request's permit, or writes the 503 and returns false.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (*permit, bool) {
	kind := s.admissionKind(r.URL.Query())
	limit := s.Config.MaxConcurrentExisting
	if kind == kindInitial {
		limit = s.Config.MaxConcurrentInitial
	}
	p, ok := s.permits.acquire(kind, limit)
	if !ok {
		msg := fmt.Sprintf("Concurrent %s request limit exceeded (limit: %d), please retry", kind, limit)
		writeUnavailable(w, r, retryAfterJitter(), map[string]string{"code": "concurrent_request_limit_exceeded", "message": msg})
		return nil, false
	}
	return p, true
}

// retryAfterJitter is a retry-after of 5 to 10 seconds, spread so refused
// clients do not come back together.
func retryAfterJitter() int { return 5 + rand.IntN(6) }

// writeOverloaded answers a request that would create a shape the server
// cannot take now (Config.MaxShapes, or shapecache.ErrOverloaded).
func writeOverloaded(w http.ResponseWriter, r *http.Request, msg string) {
	writeUnavailable(w, r, retryAfterJitter(), map[string]string{"code": "overloaded", "message": msg})
}

// pendingShapes holds the keys of shapes being created past the MaxShapes
// check, so concurrent creations of different shapes cannot all pass it.
type pendingShapes struct {
	mu   sync.Mutex
	keys map[string]int
}

// getOrCreate returns sh's shape, creating it unless the caller's quota
// (MaxShapesPerPrincipal) or the MaxShapes cap is reached; it writes the
// 429, 503 (or other error) itself when ok is false. Existing shapes are
// always served.
func (s *Server) getOrCreate(w http.ResponseWriter, r *http.Request, sh *shape.Shape) (*shapecache.Entry, bool) {
	if e, ok := s.Cache.Find(sh); ok {
		return e, true
	}
	limit := s.Config.MaxShapesPerPrincipal
	principal, counted := s.principal(r)
	if limit <= 0 || !counted {
		return s.create(w, r, sh)
	}
	if !s.quota.reserve(principal, limit) {
		s.Logger.Debug("shape refused: quota", "principal", principal, "limit", limit)
		w.Header().Set("retry-after", strconv.Itoa(30+rand.IntN(31)))
		writeError(w, r, http.StatusTooManyRequests, map[string]string{
			"code": "shape_quota_exceeded",
			"message": fmt.Sprintf("Shape quota exceeded: this client has created %d shapes that still exist (limit: %d per client); "+
				"reuse existing shapes, or retry once some are removed", limit, limit),
		})
		return nil, false
	}
	e, ok := s.create(w, r, sh)
	s.quota.done(principal, e, s.Cache.Len())
	return e, ok
}

// create is getOrCreate past the caller's quota.
func (s *Server) create(w http.ResponseWriter, r *http.Request, sh *shape.Shape) (*shapecache.Entry, bool) {
	if limit := s.Config.MaxShapes; limit > 0 {
		if !s.creating.reserve(sh.Key, s.Cache.Len(), limit) {
			writeOverloaded(w, r, "Shape limit reached (limit: "+strconv.Itoa(limit)+" shapes), please retry")
			return nil, false
		}
		defer s.creating.done(sh.Key)
	}
	e, err := s.Cache.GetOrCreate(r.Context(), sh)
	switch {
	case errors.Is(err, shapecache.ErrOverloaded):
		s.Logger.Warn("shape refused: overloaded", "table", sh.Table.Schema+"."+sh.Table.Name, "err", err)
		writeOverloaded(w, r, "Cannot create the shape now ("+err.Error()+"), please retry")
		return nil, false
	case err != nil:
		s.Logger.Error("create shape", "err", err)
		writeUnavailable(w, r, 1, map[string]string{"message": "Failed to create shape, please retry"})
		return nil, false
	}
	return e, true
}

// Shape quotas (Config.MaxShapesPerPrincipal). A principal is the caller
// as read authorisation names it (PrincipalNamer: the JWT subject), and
// otherwise the client's address. It may create
// shapes while fewer than the quota of the shapes it created still exist;
// a shape removed (deleted, expired, dropped with its table, or replaced
// by compaction) no longer counts. Requests that present the API secret
// (a trusted backend, often serving many users from one address) are not
// counted. Reads of existing shapes are never refused.

// PrincipalNamer may be implemented by a ReadAuthorizer to name the
// caller of a request it has authorised (auth.ReadPolicy: the subject of
// its token), for MaxShapesPerPrincipal; "" means anonymous.
type PrincipalNamer interface {
	Principal(r *http.Request) string
}

// principal returns who a shape creation counts against, and false when
// it counts against nobody.
func (s *Server) principal(r *http.Request) (string, bool) {
	if s.secretPresented(r) {
		return "", false
	}
	if pn, ok := s.ReadAuth.(PrincipalNamer); ok {
		if p := pn.Principal(r); p != "" {
			return "sub:" + p, true
		}
	}
	return "ip:" + clientAddr(r.RemoteAddr), true
}

// shapeQuota tracks the shapes each principal created.
type shapeQuota struct {
	mu      sync.Mutex
	owners  map[string]*ownedShapes
	tracked int // entries held in all owners
}

type ownedShapes struct {
	shapes  map[*shapecache.Entry]struct{}
	pending int // creations in progress
}

// reserve admits one creation by principal unless the shapes it created
// that still exist, plus its creations in progress, reach limit.
func (q *shapeQuota) reserve(principal string, limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.owners == nil {
		q.owners = map[string]*ownedShapes{}
	}
	o := q.owners[principal]
	if o == nil {
		o = &ownedShapes{shapes: map[*shapecache.Entry]struct{}{}}
		q.owners[principal] = o
	}
	if len(o.shapes)+o.pending >= limit {
		q.prune(o)
	}
	if len(o.shapes)+o.pending >= limit {
		if len(o.shapes)+o.pending == 0 {
			delete(q.owners, principal)
		}
		return false
	}
	o.pending++
	return true
}

// done ends a creation reserved by principal; e is the shape it got (nil
// when refused). live is the number of shapes in the cache: when far more
// entries are tracked, removed shapes are forgotten for every principal.
func (q *shapeQuota) done(principal string, e *shapecache.Entry, live int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	o := q.owners[principal]
	o.pending--
	if e != nil {
		if _, dup := o.shapes[e]; !dup {
			o.shapes[e] = struct{}{}
			q.tracked++
		}
	}
	if q.tracked > 2*live+1024 {
		for p, o := range q.owners {
			q.prune(o)
			if len(o.shapes) == 0 && o.pending == 0 {
				delete(q.owners, p)
			}
		}
	}
	if len(o.shapes) == 0 && o.pending == 0 {
		delete(q.owners, principal)
	}
}

// prune forgets o's removed shapes.
func (q *shapeQuota) prune(o *ownedShapes) {
	for e := range o.shapes {
		if e.IsGone() {
			delete(o.shapes, e)
			q.tracked--
		}
	}
}

// reserve admits the creation of key when the shapes existing plus those
// being created (key counted once) stay within limit.
func (p *pendingShapes) reserve(key string, existing, limit int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys == nil {
		p.keys = map[string]int{}
	}
	n := existing + len(p.keys)
	if _, joining := p.keys[key]; joining {
		n--
	}
	if n >= limit {
		return false
	}
	p.keys[key]++
	return true
}

func (p *pendingShapes) done(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys[key]--; p.keys[key] <= 0 {
		delete(p.keys, key)
	}
}

// admittedWriter promotes the request's permit from initial to existing
// when the response starts: the expensive part (shape creation, snapshot
// wait) is over, and writing a large chunk to a slow client must not hold
// an initial slot.
type admittedWriter struct {
	http.ResponseWriter
	p     *permit
	limit int
}

func (a *admittedWriter) WriteHeader(status int) {
	a.p.promote(a.limit)
	a.ResponseWriter.WriteHeader(status)
}

func (a *admittedWriter) Write(b []byte) (int, error) {
	a.p.promote(a.limit)
	return a.ResponseWriter.Write(b)
}

func (a *admittedWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }
