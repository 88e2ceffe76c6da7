// Package httpapi serves the Electric HTTP Shape API v1 over shapecache.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voltsync/volt/shapecache"
)

// Defaults for Config.
const (
	DefaultLongPollTimeout = 20 * time.Second
	DefaultSSETimeout      = 60 * time.Second
	DefaultKeepAlive       = 21 * time.Second
	DefaultCacheMaxAge     = 60
	DefaultCacheStaleAge   = 300
	// DefaultMaxConcurrentInitial and DefaultMaxConcurrentExisting bound
	// requests in progress (admission.go). Electric allows 300 initial
	// requests; volt allows more because identical initial requests share
	// one snapshot and one read (collapse.go), and the work that does grow
	// with distinct shapes (snapshots) has its own limits in shapecache.
	DefaultMaxConcurrentInitial  = 5000
	DefaultMaxConcurrentExisting = 10000
	// DefaultStallTimeout is how long a response may make no progress
	// before its client is dropped (write.go).
	DefaultStallTimeout = 30 * time.Second
)

// Config holds the protocol knobs.
type Config struct {
	Secret             string
	LongPollTimeout    time.Duration
	SSETimeout         time.Duration
	KeepAlive          time.Duration
	CacheMaxAge        int // seconds
	CacheStaleAge      int // seconds
	AllowShapeDeletion bool
	// AuthorizedCachePublic keeps "public" cache-control on responses that
	// depend on the caller's credentials (ReadRequest.Private), for a proxy
	// that keys its cache by the Authorization header; they always carry
	// "Vary: Authorization". By default they are "private".
	AuthorizedCachePublic bool
	// MaxConcurrentInitial caps concurrent shape requests without a known
	// handle (or at offset=-1) and MaxConcurrentExisting all others, live
	// ones included; past a cap a request gets 503 with retry-after. Zero
	// means the default, a negative value no cap.
	MaxConcurrentInitial  int
	MaxConcurrentExisting int
	// MaxShapes refuses (503) requests that would create a shape while the
	// cache holds this many; existing shapes are still served. 0: no cap.
	MaxShapes int
	// StallTimeout drops a client that accepts no response bytes for this
	// long: a shape response's write deadline, renewed per write.
	StallTimeout time.Duration
}

// Server answers shape requests.
type Server struct {
	Cache       *shapecache.Cache
	Inspector   shapecache.Inspector
	Snapshotter shapecache.Snapshotter // runs subset snapshots
	// Ready reports whether replication is streaming (health and long-poll
	// timeouts depend on it); nil means always ready.
	Ready func() bool
	// Mutations, when set, serves POST /v1/mutations (package mutations).
	Mutations http.Handler
	// ReadAuth, when set, authorises shape requests that do not present
	// the API secret (readauth.go).
	ReadAuth ReadAuthorizer
	// ShapeTokens, when set, serves POST /v1/shape-token.
	ShapeTokens http.Handler
	Config      Config
	Logger      *slog.Logger

	ln      net.Listener
	srv     *http.Server
	ctx     context.Context
	cancel  context.CancelCauseFunc
	etagSeq atomic.Int64
	permits admission
	parked  atomic.Int64 // long-polls waiting for a change
	reads   sharedReads
	// creating counts shape keys being created under the MaxShapes check.
	creating pendingShapes
	// Wrap, when set, wraps the handler that Listen serves, to serve
	// more paths on the same listener (volt demo's page).
	Wrap func(api http.Handler) http.Handler

	// knownDefs remembers "<handle>\x00<definition as spelled>" pairs that
	// resolve to that handle's shape, so repeated requests skip parsing.
	knownDefs sync.Map
	// recentDefs spares identical initial requests the catalog query.
	recentDefs recentDefs
}

func (s *Server) defaults() {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	c := &s.Config
	if c.LongPollTimeout == 0 {
		c.LongPollTimeout = DefaultLongPollTimeout
	}
	if c.SSETimeout == 0 {
		c.SSETimeout = DefaultSSETimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.CacheMaxAge == 0 {
		c.CacheMaxAge = DefaultCacheMaxAge
	}
	if c.CacheStaleAge == 0 {
		c.CacheStaleAge = DefaultCacheStaleAge
	}
	if c.MaxConcurrentInitial == 0 {
		c.MaxConcurrentInitial = DefaultMaxConcurrentInitial
	}
	if c.MaxConcurrentExisting == 0 {
		c.MaxConcurrentExisting = DefaultMaxConcurrentExisting
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
}

// Listen opens the listening socket.
func (s *Server) Listen(addr string) error {
	s.defaults()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	h := s.Handler()
	if s.Wrap != nil {
		h = s.Wrap(h)
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	return nil
}

// Serve serves until Close.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops accepting requests, ends live requests and waits for the rest.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	s.cancel(errors.New("server closing"))
	return s.srv.Shutdown(ctx)
}

// Port returns the listening port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// URL returns the server's base URL.
func (s *Server) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port()) }

// Handler returns the HTTP handler (also usable without Listen).
func (s *Server) Handler() http.Handler {
	s.defaults()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancelCause(context.Background())
	}
	return http.HandlerFunc(s.route)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	// A kept-alive connection may carry the write deadline of an earlier
	// shape response; every request starts without one.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.Header().Set("electric-server", "volt")
	p := normalisePath(r.URL)
	switch {
	case p == "/v1/shape":
		s.routeShape(w, r)
	case p == "/v1/mutations" && s.Mutations != nil:
		s.routeMutations(w, r)
	case p == "/v1/shape-token" && s.ShapeTokens != nil:
		setCORS(w, r, "POST, OPTIONS")
		if r.Method == http.MethodOptions {
			w.Header().Set("access-control-max-age", "86400")
			w.Header().Set("access-control-allow-headers", "authorization, content-type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.ShapeTokens.ServeHTTP(w, r)
	case p == "/v1/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		setCORS(w, r, "GET, HEAD")
		s.health(w, r)
	case p == "/v1/stats" && r.Method == http.MethodGet:
		s.stats(w, r)
	case p == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("content-type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("Not found"))
	}
}

func (s *Server) routeShape(w http.ResponseWriter, r *http.Request) {
	const methods = "GET, POST, HEAD, DELETE, OPTIONS"
	if r.Method == http.MethodOptions {
		setCORS(w, r, methods)
		s.options(w, r)
		return
	}
	if !secretOK(r, s.Config.Secret) && s.ReadAuth == nil {
		writeError(w, r, http.StatusUnauthorized, map[string]string{"message": "Unauthorized - Invalid API secret"})
		return
	}
	setCORS(w, r, methods)
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		s.serveShape(w, r)
	case http.MethodDelete:
		if s.ReadAuth != nil && !s.secretPresented(r) {
			writeError(w, r, http.StatusForbidden, map[string]string{"message": "DELETE /v1/shape needs the API secret", "code": "forbidden"})
			return
		}
		s.deleteShape(w, r)
	default:
		w.Header().Set("allow", methods)
		writeError(w, r, http.StatusMethodNotAllowed, map[string]string{"message": "Method not allowed"})
	}
}

// routeMutations answers CORS preflights for the write endpoint and
// requires the API secret, when one is set, as the shape endpoint does.
func (s *Server) routeMutations(w http.ResponseWriter, r *http.Request) {
	const methods = "POST, OPTIONS"
	setCORS(w, r, methods)
	if r.Method == http.MethodOptions {
		w.Header().Set("access-control-max-age", "86400")
		w.Header().Set("access-control-allow-headers", "authorization, content-type, traceparent")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !secretOK(r, s.Config.Secret) {
		writeError(w, r, http.StatusUnauthorized, map[string]string{"message": "Unauthorized - Invalid API secret"})
		return
	}
	s.Mutations.ServeHTTP(w, r)
}

// normalisePath unescapes and cleans the path so that /v1//shape and
// /v1/%73hape reach (and are authenticated as) the shape endpoint.
func normalisePath(u interface{ EscapedPath() string }) string {
	p := u.EscapedPath()
	if un, err := url.PathUnescape(p); err == nil {
		p = un
	}
	return path.Clean("/" + p)
}

func (s *Server) options(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("access-control-max-age", "86400")
	var allowed []string
	for _, name := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "if-none-match" || name == "traceparent" || (name == "authorization" && s.ReadAuth != nil) {
			allowed = append(allowed, name)
		}
	}
	if len(allowed) > 0 {
		h.Set("access-control-allow-headers", strings.Join(allowed, ", "))
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("cache-control", "no-cache, no-store, must-revalidate")
	if s.Ready != nil && !s.Ready() {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "starting"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "active"})
}
