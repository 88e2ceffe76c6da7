// Package httpapi serves the Electric HTTP Shape API v1 over shapecache.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voltsync/volt"
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
	// DefaultIdleTimeout closes a kept-alive connection that has waited
	// this long for its next request; above nginx's 60 s upstream
	// keepalive_timeout (deploy/nginx), so a proxy never reuses a
	// connection volt is closing.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultHeaderTimeout bounds the time to send a request's headers.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds the time to send a request's body once its
	// headers are in (1 MiB, the largest body volt reads, in 30 s is
	// 35 KB/s). Requests without a body, long-polls and SSE streams
	// among them, have no such deadline.
	DefaultBodyTimeout = 30 * time.Second
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
	// MaxShapesPerPrincipal refuses (429) requests that would create a
	// shape when the caller already created this many shapes that still
	// exist (admission.go). 0: no quota.
	MaxShapesPerPrincipal int

	// CORSOrigins lists the origins whose pages may read volt's answers:
	// exact origins ("https://app.example.com"), or "*" for any. Empty:
	// any origin when reads are protected (Secret or ReadAuth set), and
	// otherwise only pages served from this machine (http or https on
	// localhost, 127.0.0.1 or [::1], any port). A refused origin gets no
	// access-control-allow-* headers.
	CORSOrigins []string

	// Connections (Listen). IdleTimeout closes kept-alive connections
	// idle for this long, HeaderTimeout bounds the sending of a request's
	// headers and BodyTimeout that of its body; zero means the default.
	IdleTimeout   time.Duration
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	// MaxConnsPerIP caps the open connections from one client address
	// (IPv6: one /64): a request on a connection past the cap gets 429
	// with retry-after, and the connection is closed; past twice the cap a
	// new connection is closed at once, unanswered. 0: no cap.
	MaxConnsPerIP int
}

// Server answers shape requests.
type Server struct {
	// Cache holds the shapes; every database access of a request goes
	// through it (table lookups, snapshots, subsets).
	Cache *shapecache.Cache
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
	// Metrics, when set (NewMetrics), counts the requests Listen serves;
	// at debug level each request is logged either way.
	Metrics *Metrics

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
	// conns counts open connections per client address (MaxConnsPerIP).
	conns connCounts
	// quota counts the shapes each principal created (MaxShapesPerPrincipal).
	quota shapeQuota
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
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
}

// Listen opens the listening socket.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ListenOn(ln)
	return nil
}

// ListenOn is Listen on a listener the caller opened; Serve serves it and
// Close closes it.
func (s *Server) ListenOn(ln net.Listener) {
	s.defaults()
	s.ln = ln
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	h := s.Handler()
	if s.Wrap != nil {
		h = s.Wrap(h)
	}
	s.srv = &http.Server{
		Handler:           s.observe(s.guard(h)),
		ReadHeaderTimeout: s.Config.HeaderTimeout,
		IdleTimeout:       s.Config.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	if s.Config.MaxConnsPerIP > 0 {
		s.conns.limit, s.conns.log = s.Config.MaxConnsPerIP, s.Logger
		s.ln = limitedListener{Listener: ln, cc: &s.conns}
		s.srv.ConnContext = s.conns.opened
		s.srv.ConnState = s.conns.changed
	}
}

// guard applies the connection limits to every request Listen serves:
// a connection past the per-address cap gets 429 and is closed, and a
// request body must arrive within BodyTimeout. A request without a body
// (every long-poll and SSE stream) keeps the connection without read
// deadline: net/http then only watches it for the client going away.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip, over := overCap(r.Context()); over {
			limit := s.Config.MaxConnsPerIP
			w.Header().Set("connection", "close")
			w.Header().Set("retry-after", strconv.Itoa(retryAfterJitter()))
			writeError(w, r, http.StatusTooManyRequests, map[string]string{
				"code":    "too_many_connections",
				"message": fmt.Sprintf("Too many open connections from %s (limit: %d), please close some and retry", ip, limit),
			})
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			// Cleared by net/http once the body is read to its end.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.Config.BodyTimeout))
		}
		h.ServeHTTP(w, r)
	})
}

// connCounts counts the open connections of each client address.
type connCounts struct {
	limit int
	log   *slog.Logger
	mu    sync.Mutex
	open  map[string]int
	// warned is when the last refusal was logged (at most one a minute).
	warned time.Time
}

// overCapKey marks, in a connection's context, that the connection was
// past its address's cap when accepted (the value is the address).
type overCapKey struct{}

func overCap(ctx context.Context) (string, bool) {
	ip, ok := ctx.Value(overCapKey{}).(string)
	return ip, ok
}

// connIP is the client address a connection counts against.
func connIP(c net.Conn) string { return clientAddr(c.RemoteAddr().String()) }

// clientAddr is the client a remote address ("host:port") belongs to:
// its IPv4 address, or the /64 of its IPv6 address (one host commonly
// holds a whole /64).
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	prefix, _ := ip.WithZone("").Prefix(64)
	return prefix.String()
}

// limitedListener counts each accepted connection against its address,
// and closes at once, without an answer, one from an address that already
// has twice its cap open: past the cap a request is answered 429 (guard),
// but a connection that sends nothing would hold its file descriptor until
// the header timeout.
type limitedListener struct {
	net.Listener
	cc *connCounts
}

func (l limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.cc.add(connIP(c)) {
			return c, nil
		}
		_ = c.Close()
	}
}

// add counts a new connection from ip, unless ip has twice the cap open.
func (cc *connCounts) add(ip string) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.open == nil {
		cc.open = map[string]int{}
	}
	if cc.open[ip] >= 2*cc.limit {
		cc.warn(ip)
		return false
	}
	cc.open[ip]++
	return true
}

// warn logs that ip reached the cap, at most once a minute; cc.mu is held.
func (cc *connCounts) warn(ip string) {
	if time.Since(cc.warned) > time.Minute {
		cc.warned = time.Now()
		cc.log.Warn("connection limit reached: further connections get 429, and past twice the limit are closed at once (logged once a minute)", "ip", ip, "limit", cc.limit)
	}
}

// opened is the server's ConnContext: it marks a connection accepted while
// its address is past the cap.
func (cc *connCounts) opened(ctx context.Context, c net.Conn) context.Context {
	ip := connIP(c)
	cc.mu.Lock()
	over := cc.open[ip] > cc.limit
	if over {
		cc.warn(ip)
	}
	cc.mu.Unlock()
	if !over {
		return ctx
	}
	return context.WithValue(ctx, overCapKey{}, ip)
}

// changed is the server's ConnState: a closed (or hijacked) connection no
// longer counts.
func (cc *connCounts) changed(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	ip := connIP(c)
	cc.mu.Lock()
	if cc.open[ip]--; cc.open[ip] <= 0 {
		delete(cc.open, ip)
	}
	cc.mu.Unlock()
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
	w.Header().Set(volt.HeaderServer, "volt")
	p := normalisePath(r.URL)
	switch {
	case p == "/v1/shape":
		s.routeShape(w, r)
	case p == "/v1/mutations" && s.Mutations != nil:
		s.routeMutations(w, r)
	case p == "/v1/shape-token" && s.ShapeTokens != nil:
		allowed := s.cors(w, r, "POST, OPTIONS")
		if r.Method == http.MethodOptions {
			if allowed {
				w.Header().Set("access-control-max-age", "86400")
				w.Header().Set("access-control-allow-headers", "authorization, content-type")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.ShapeTokens.ServeHTTP(w, r)
	case p == "/v1/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.cors(w, r, "GET, HEAD")
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
		s.options(w, r, s.cors(w, r, methods))
		return
	}
	if !secretOK(r, s.Config.Secret) && s.ReadAuth == nil {
		writeError(w, r, http.StatusUnauthorized, map[string]string{"message": "Unauthorized - Invalid API secret"})
		return
	}
	s.cors(w, r, methods)
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
	allowed := s.cors(w, r, methods)
	if r.Method == http.MethodOptions {
		if allowed {
			w.Header().Set("access-control-max-age", "86400")
			w.Header().Set("access-control-allow-headers", "authorization, content-type, traceparent")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !secretOK(r, s.Config.Secret) {
		writeError(w, r, http.StatusUnauthorized, map[string]string{"message": "Unauthorized - Invalid API secret"})
		return
	}
	s.Mutations.ServeHTTP(w, r)
}

// cors adds the CORS headers for the request's origin (setCORS) when the
// origin is allowed (Config.CORSOrigins) and reports whether it is. A
// refused origin gets only "Vary: Origin": the answer depends on it.
func (s *Server) cors(w http.ResponseWriter, r *http.Request, methods string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.originAllowed(origin) {
		setCORS(w, r, methods)
		return true
	}
	w.Header().Add("vary", "Origin")
	return false
}

// originAllowed applies Config.CORSOrigins to a request's Origin.
func (s *Server) originAllowed(origin string) bool {
	if len(s.Config.CORSOrigins) == 0 {
		return s.Config.Secret != "" || s.ReadAuth != nil || loopbackOrigin(origin)
	}
	for _, o := range s.Config.CORSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// loopbackOrigin reports whether origin is a page served from this
// machine: http or https on localhost, 127.0.0.1 or [::1], on any port.
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
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

// options answers a preflight; without allowed (a refused origin) it
// carries no access-control-allow-* header, so the browser refuses.
func (s *Server) options(w http.ResponseWriter, r *http.Request, allowed bool) {
	if !allowed {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h := w.Header()
	h.Set("access-control-max-age", "86400")
	var names []string
	for _, name := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "if-none-match" || name == "traceparent" || (name == "authorization" && s.ReadAuth != nil) {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		h.Set("access-control-allow-headers", strings.Join(names, ", "))
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
