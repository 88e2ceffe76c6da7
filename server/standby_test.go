package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestStandbyHandsOverItsListener: a standby answers health with 202
// waiting and other requests with 503; after handoff the same listener,
// now the server's, serves the real handler, and a connection made before
// the handoff completes is not lost.
func TestStandbyHandsOverItsListener(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sb, err := startStandby("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + sb.ln.Addr().String()
	for path, want := range map[string]int{"/v1/health": 202, "/v1/shape?table=items&offset=-1": 503} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("standby %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
		if path == "/v1/health" && !strings.Contains(string(body), `"waiting"`) {
			t.Fatalf("standby health body %s", body)
		}
	}
	ln := sb.handoff(context.Background())
	if ln == nil {
		t.Fatal("handoff returned no listener")
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "active")
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	resp, err := http.Get(base + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "active" {
		t.Fatalf("after the handoff: %d %s", resp.StatusCode, body)
	}
}

// TestHandoffKeepsRacingConnection: a connection the standby accepts once
// the handoff has begun is kept for the server, which accepts it first.
func TestHandoffKeepsRacingConnection(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	sb := &standby{handing: true}
	if c, err, again := sb.accepted(a, nil); c != nil || err != net.ErrClosed || again {
		t.Fatalf("accepted during handoff = %v, %v, %v", c, err, again)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	el := &earlyListener{Listener: inner, early: sb.early}
	if c, err := el.Accept(); err != nil || c != a {
		t.Fatalf("the server's first Accept = %v, %v, want the racing connection", c, err)
	}
}

// TestStandbyWithoutPort: when the API port is held (the active instance
// on the same host), the standby binds nothing and hands over nothing.
func TestStandbyWithoutPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	sb, err := startStandby(held.Addr().String(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if ln := sb.handoff(context.Background()); ln != nil {
		t.Fatalf("handoff returned %v for a port it never bound", ln.Addr())
	}
	sb.close()
}
