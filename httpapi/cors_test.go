package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCORSOrigins: without a secret or read rules only loopback pages may
// read volt's answers (any page used to); with them every origin may, and
// Config.CORSOrigins replaces either default. A refused origin gets no
// access-control-allow-* header, preflights included.
func TestCORSOrigins(t *testing.T) {
	loopback := []string{"http://localhost", "http://localhost:5173", "https://localhost:8443", "http://127.0.0.1:3000", "http://[::1]:8080", "https://[::1]"}
	foreign := []string{"https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.evil.example", "null", "http://192.168.1.5:3000", "file://", "http://localhost:3000/path"}
	for _, c := range []struct {
		name    string
		cfg     Config
		allowed []string
		refused []string
	}{
		{"insecure default", Config{}, loopback, foreign},
		{"secret", Config{Secret: "s"}, append(loopback, "https://evil.example", "http://192.168.1.5:3000"), nil},
		{"list", Config{CORSOrigins: []string{"https://app.example", "http://localhost:5173"}}, []string{"https://app.example", "http://localhost:5173"}, []string{"https://evil.example", "http://localhost:3000", "https://app.example.evil"}},
		{"list with secret", Config{Secret: "s", CORSOrigins: []string{"https://app.example"}}, []string{"https://app.example"}, []string{"https://evil.example", "http://localhost:5173"}},
		{"star", Config{CORSOrigins: []string{"*"}}, append(loopback, "https://evil.example"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{Config: c.cfg, Mutations: http.NotFoundHandler()}
			h := s.Handler()
			serve := func(method, path, origin string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(method, path, nil)
				req.Header.Set("Origin", origin)
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "if-none-match")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w
			}
			for _, o := range c.allowed {
				for _, r := range []*httptest.ResponseRecorder{serve("GET", "/v1/health", o), serve("OPTIONS", "/v1/shape?table=t", o), serve("OPTIONS", "/v1/mutations", o)} {
					if got := r.Header().Get("access-control-allow-origin"); got != o {
						t.Errorf("origin %s: access-control-allow-origin %q, want it echoed", o, got)
					}
				}
				if got := serve("OPTIONS", "/v1/shape?table=t", o).Header().Get("access-control-allow-headers"); got != "if-none-match" {
					t.Errorf("origin %s: preflight allows headers %q", o, got)
				}
			}
			for _, o := range c.refused {
				for _, r := range []*httptest.ResponseRecorder{serve("GET", "/v1/health", o), serve("OPTIONS", "/v1/shape?table=t", o), serve("OPTIONS", "/v1/mutations", o)} {
					for name := range r.Header() {
						if strings.HasPrefix(strings.ToLower(name), "access-control-allow") {
							t.Errorf("refused origin %s: %s: %q", o, name, r.Header().Get(name))
						}
					}
					if r.Code >= 500 || !strings.Contains(r.Header().Get("vary"), "Origin") {
						t.Errorf("refused origin %s: %d, vary %q", o, r.Code, r.Header().Get("vary"))
					}
				}
			}
			// Requests without Origin (other programs) are unchanged.
			req := httptest.NewRequest("GET", "/v1/health", nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK || w.Header().Get("access-control-allow-origin") != "*" {
				t.Errorf("no Origin: %d, access-control-allow-origin %q", w.Code, w.Header().Get("access-control-allow-origin"))
			}
		})
	}
}
