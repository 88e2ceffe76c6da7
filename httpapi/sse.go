package httpapi

import (
	"bufio"
	"net/http"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapecache"
)

// sseBuffer is the buffer of an SSE stream's writer: a stream holds it
// for as long as it is open, mostly waiting, so it is small; a message
// larger than it is written through.
const sseBuffer = 4 << 10

// sseStream is an open SSE response: serveShape waits for changes with
// awaitSSE and sends them with sendSSE, in its own shallow frame.
type sseStream struct {
	w         http.ResponseWriter
	r         *http.Request
	e         *shapecache.Entry
	bw        *bufio.Writer
	sw        *stallWriter
	offset    volt.Offset
	timeout   *time.Timer
	keepAlive *time.Ticker
	changed   <-chan struct{} // set by sendSSE
}

func (ss *sseStream) stop() {
	ss.timeout.Stop()
	ss.keepAlive.Stop()
}

// send writes msgs, and up-to-date when set, as events and flushes them.
func (ss *sseStream) send(msgs [][]byte, upToDate bool, lsn uint64) bool {
	for _, m := range msgs {
		writeEvent(ss.bw, m)
	}
	if upToDate {
		writeEvent(ss.bw, shape.UpToDate(lsn))
	}
	return ss.bw.Flush() == nil && ss.sw.Flush() == nil
}

// serveSSE answers live_sse=true: entries already available are sent and
// the response ends; otherwise it returns the open stream, which sends
// each new batch followed by up-to-date, with keep-alive comments, until
// SSETimeout.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry) *sseStream {
	res, ok := s.read(w, r, req, e, false, 0)
	if !ok {
		return nil
	}
	atHead := res.AtHead
	s.setLogHeaders(w, req, e, res.End, atHead, true)
	h := w.Header()
	h.Set("content-type", "text/event-stream")
	h.Set("connection", "keep-alive")
	// A stream: proxies must pass each event on as it comes (nginx honours
	// this header by turning off its response buffering).
	h.Set("x-accel-buffering", "no")
	h.Del(volt.HeaderSchema)
	w.WriteHeader(http.StatusOK)
	bw, sw := s.bodyWriter(w, sseBuffer)
	ss := &sseStream{w: w, r: r, e: e, bw: bw, sw: sw, offset: req.offset}
	if len(res.Entries) > 0 {
		ss.send(res.Entries, atHead, max(res.End.LSN, res.processed))
		return nil
	}
	if sw.Flush() != nil {
		return nil
	}
	ss.timeout = time.NewTimer(s.Config.SSETimeout)
	ss.keepAlive = time.NewTicker(s.Config.KeepAlive)
	return ss
}

// sendSSE sends what the log holds after the stream's offset; false ends
// the stream.
func (s *Server) sendSSE(ss *sseStream) bool {
	for {
		if ss.e.IsGone() {
			return false
		}
		ss.changed = ss.e.Changed()
		processed := s.Cache.LastProcessedLSN() // see readResult.processed
		res, err := s.readShared(ss.e, ss.offset, ss.changed, nil)
		if err != nil || len(res.Entries) == 0 {
			return true
		}
		if !ss.send(res.Entries, res.AtHead, max(res.End.LSN, processed)) {
			return false
		}
		ss.offset = res.End
		ss.keepAlive.Reset(s.Config.KeepAlive)
	}
}

// awaitSSE waits for the log to change, sending keep-alive comments;
// false ends the stream.
func (s *Server) awaitSSE(ss *sseStream) bool {
	for {
		select {
		case <-ss.changed:
			return true
		case <-ss.e.Gone():
			return false
		case <-ss.keepAlive.C:
			_, _ = ss.bw.WriteString(": keep-alive\n\n")
			if ss.bw.Flush() != nil || ss.sw.Flush() != nil {
				return false
			}
		case <-ss.timeout.C:
			return false
		case <-ss.r.Context().Done():
			return false
		}
	}
}

// writeEvent writes one SSE event holding msg; errors surface at Flush.
func writeEvent(bw *bufio.Writer, msg []byte) {
	_, _ = bw.WriteString("data: ")
	_, _ = bw.Write(msg)
	_, _ = bw.WriteString("\n\n")
}
