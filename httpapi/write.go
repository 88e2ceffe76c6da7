package httpapi

import (
	"bufio"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"
)

// bodyBuffer bounds what one response buffers on its way to the socket:
// bodies are written from the log's buffers in pieces of at most this size,
// never copied whole.
const bodyBuffer = 64 << 10

// stallWriter writes a response body with a write deadline renewed before
// every write: a client that accepts nothing for the stall timeout makes the
// write fail, and net/http then closes its connection, releasing what the
// response held (up to a chunk of the log). A slow client that keeps
// reading is not affected.
type stallWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	logger  *slog.Logger
	err     error
}

func (s *Server) newStallWriter(w http.ResponseWriter) *stallWriter {
	return &stallWriter{w: w, rc: http.NewResponseController(w), timeout: s.Config.StallTimeout, logger: s.Logger}
}

// renew pushes the write deadline StallTimeout ahead.
func (sw *stallWriter) renew() {
	if sw.timeout > 0 {
		_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	}
}

func (sw *stallWriter) Write(p []byte) (int, error) {
	if sw.err != nil {
		return 0, sw.err
	}
	sw.renew()
	n, err := sw.w.Write(p)
	sw.failed(err)
	return n, err
}

// Flush sends what net/http buffered (SSE batches), under the deadline.
func (sw *stallWriter) Flush() error {
	if sw.err != nil {
		return sw.err
	}
	sw.renew()
	err := sw.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		err = nil
	}
	sw.failed(err)
	return err
}

func (sw *stallWriter) failed(err error) {
	if err == nil || sw.err != nil {
		return
	}
	sw.err = err
	if errors.Is(err, os.ErrDeadlineExceeded) {
		sw.logger.Info("dropped a client that stopped reading", "stall_timeout", sw.timeout)
	}
}

// bodyWriter returns a buffered writer of at most bodyBuffer bytes (fewer
// for a smaller body of size n) over a stallWriter.
func (s *Server) bodyWriter(w http.ResponseWriter, n int) (*bufio.Writer, *stallWriter) {
	sw := s.newStallWriter(w)
	return bufio.NewWriterSize(sw, min(max(n, 512), bodyBuffer)), sw
}
