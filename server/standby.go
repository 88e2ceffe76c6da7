package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// standby answers on the API address while another volt holds the storage
// directory: /v1/health says 202 {"status":"waiting"} (as Electric's
// waiting instance does), so a load balancer keeps the standby out of
// rotation, and every other request gets 503 with retry-after. When the
// lock is taken, handoff stops answering and returns the listener itself:
// connections that arrive during the takeover wait in its backlog and are
// served once the server is ready, instead of being refused.
type standby struct {
	ln   *net.TCPListener // nil when the port is held (the active instance on the same host)
	srv  *http.Server
	done chan struct{}

	mu      sync.Mutex
	handing bool
	early   []net.Conn // accepted after handing began: the server's
}

// startStandby binds addr if it can and answers as a standby there. A
// port in use is not an error: the active instance holds it on this
// host, and the server binds it once it takes over.
func startStandby(addr string, log *slog.Logger) (*standby, error) {
	s := &standby{done: make(chan struct{})}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		log.Info("standby: the API port is in use (by the active volt?); it is bound on takeover", "addr", addr)
		close(s.done)
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = ln.(*net.TCPListener)
	s.srv = &http.Server{Handler: http.HandlerFunc(standbyAnswer), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(handoffListener{s})
	}()
	return s, nil
}

// standbyAnswer is every response of a standby.
func standbyAnswer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("content-type", "application/json")
	w.Header().Set("cache-control", "no-cache, no-store, must-revalidate")
	w.Header().Set("connection", "close") // the next request may find the active server
	if r.URL.Path == "/v1/health" {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"waiting"}`))
		return
	}
	w.Header().Set("retry-after", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"message":"this volt is a standby: another instance holds its storage directory, and this one takes over when it exits; retry"}`))
}

// handoff stops answering and returns the bound listener (nil if the port
// was held), which the caller now owns.
func (s *standby) handoff(ctx context.Context) net.Listener {
	if s.ln == nil {
		return nil
	}
	s.mu.Lock()
	s.handing = true
	s.mu.Unlock()
	// Wake the Accept in progress; the wrapper then reports itself closed
	// and Serve returns without closing the real listener.
	_ = s.ln.SetDeadline(time.Now())
	<-s.done
	_ = s.ln.SetDeadline(time.Time{})
	shut, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// The standby's own connections; Serve has returned, and the listener
	// stays open (handoffListener.Close).
	_ = s.srv.Shutdown(shut)
	s.mu.Lock()
	defer s.mu.Unlock()
	return &earlyListener{Listener: s.ln, early: s.early}
}

// handoffListener is the standby server's view of the listener: Close
// does not close it, and Accept fails once a handoff has begun.
type handoffListener struct{ s *standby }

func (l handoffListener) Accept() (net.Conn, error) {
	for {
		c, err := l.s.ln.Accept()
		if c, err, again := l.s.accepted(c, err); !again {
			return c, err
		}
	}
}

// accepted decides what the standby server gets from one Accept: a
// connection accepted once the handoff began is kept for the server, and
// the deadline that handoff sets to wake Accept is not an error until then.
func (s *standby) accepted(c net.Conn, err error) (_ net.Conn, _ error, again bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handing {
		if err == nil {
			s.early = append(s.early, c)
		}
		return nil, net.ErrClosed, false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, nil, true
	}
	return c, err, false
}

func (l handoffListener) Close() error   { return nil }
func (l handoffListener) Addr() net.Addr { return l.s.ln.Addr() }

// earlyListener serves the connections accepted during the handoff first,
// then those of the listener.
type earlyListener struct {
	net.Listener
	mu    sync.Mutex
	early []net.Conn
}

func (l *earlyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.early) > 0 {
		c := l.early[0]
		l.early = l.early[1:]
		l.mu.Unlock()
		return c, nil
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// close stops a standby that never takes over.
func (s *standby) close() {
	if s.ln == nil {
		return
	}
	_ = s.ln.Close() // Serve returns; Shutdown waits for that
	<-s.done
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(shut)
}
