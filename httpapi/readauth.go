package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/voltsync/volt/shape"
)

// ReadAuthorizer decides who may read which shapes; package auth
// implements it from the rules file (docs/AUTH.md). It is called for every
// GET/HEAD/POST shape request that does not present the API secret, before
// the shape is resolved.
type ReadAuthorizer interface {
	// AuthorizeRead may narrow the request's definition (add a row
	// predicate, check the columns) and check a subset request. An error
	// refuses the request: a *ReadError says how, anything else is a 403.
	AuthorizeRead(r *http.Request, req *ReadRequest) error
}

// ReadRequest is what a ReadAuthorizer sees and may change.
type ReadRequest struct {
	// Table is the table parameter as given ("" when missing).
	Table string
	// Def is the requested definition. Schema and Table are resolved when
	// the table parameter parses; Where, Params, Columns, Replica and Log
	// are as requested. The authorizer may replace Where, Params and
	// Columns: the shape served is the one Def describes afterwards.
	Def *shape.Definition
	// Subset is the subset snapshot's where, params and order_by, nil
	// unless the request is a subset request.
	Subset *SubsetRequest
	// Private is set by the authorizer when the answer depends on who asks
	// (the caller's claims): such responses must not be served to anyone
	// else by a shared cache (Config.AuthorizedCachePublic).
	Private bool
}

// SubsetRequest is the part of a subset request an authorizer checks.
type SubsetRequest struct {
	Where   string
	Params  map[string]string
	OrderBy string
}

// ReadError refuses a read with Status (401 or 403) and a JSON body
// {"message": Message, "code": Code}. With Status 400 and Field set, it is
// a validation error of that parameter, in Electric's 400 format.
type ReadError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *ReadError) Error() string { return e.Message }

// secretPresented reports whether the request carries the configured API
// secret (which grants every read).
func (s *Server) secretPresented(r *http.Request) bool {
	return s.Config.Secret != "" && secretOK(r, s.Config.Secret)
}

// authorizeRead runs the ReadAuthorizer unless the secret was presented. It
// returns the response writer to use (one that keeps private responses out
// of shared caches), or ok=false when a refusal was written.
func (s *Server) authorizeRead(w http.ResponseWriter, r *http.Request, req *request, sub *subset) (http.ResponseWriter, bool) {
	if s.ReadAuth == nil || s.secretPresented(r) {
		return w, true
	}
	if req.tableSet {
		if schema, name, err := shape.ParseRelation(req.table); err == nil {
			req.def.Schema, req.def.Table = schema, name
		}
	}
	rr := &ReadRequest{Table: req.table, Def: &req.def}
	if sub != nil {
		rr.Subset = &SubsetRequest{Where: sub.Where, Params: sub.Params, OrderBy: sub.OrderBy}
	}
	if err := s.ReadAuth.AuthorizeRead(r, rr); err != nil {
		writeReadError(w, r, err)
		return nil, false
	}
	req.ruled = true
	if rr.Private {
		return &privateWriter{ResponseWriter: w, public: s.Config.AuthorizedCachePublic}, true
	}
	return w, true
}

// ruledKey marks the context of a request that read rules decided.
type ruledKey struct{}

// withRuled marks r as decided by read rules.
func withRuled(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ruledKey{}, true))
}

// ruled reports whether read rules decided r (it did not present the
// secret): its answers must not reveal rows the rules hide.
func ruled(r *http.Request) bool {
	v, _ := r.Context().Value(ruledKey{}).(bool)
	return v
}

func writeReadError(w http.ResponseWriter, r *http.Request, err error) {
	re := &ReadError{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()}
	if errors.As(err, &re) && re.Status == 0 {
		re.Status = http.StatusForbidden
	}
	if re.Status == http.StatusBadRequest && re.Field != "" {
		writeInvalid(w, r, fieldErrors{re.Field: {re.Message}})
		return
	}
	if re.Code == "" {
		re.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(re.Status), " ", "_"))
	}
	if re.Status == http.StatusUnauthorized {
		w.Header().Set("www-authenticate", `Bearer realm="volt"`)
	}
	w.Header().Add("vary", "Authorization")
	writeError(w, r, re.Status, map[string]string{"message": re.Message, "code": re.Code})
}

// privateWriter marks a response that depends on the caller's credentials:
// "Vary: Authorization" always, and cache-control "private, …" instead of
// "public, …" unless public (the operator's proxy keys its cache by the
// Authorization header, deploy/nginx/README.md).
type privateWriter struct {
	http.ResponseWriter
	public      bool
	wroteHeader bool
}

func (p *privateWriter) WriteHeader(status int) {
	if !p.wroteHeader {
		p.wroteHeader = true
		h := p.ResponseWriter.Header()
		h.Add("vary", "Authorization")
		if cc := h.Get("cache-control"); !p.public && strings.HasPrefix(cc, "public") {
			h.Set("cache-control", "private"+strings.TrimPrefix(cc, "public"))
		}
	}
	p.ResponseWriter.WriteHeader(status)
}

func (p *privateWriter) Write(b []byte) (int, error) {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	return p.ResponseWriter.Write(b)
}

// Flush lets SSE streams through.
func (p *privateWriter) Flush() {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	if f, ok := p.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *privateWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
