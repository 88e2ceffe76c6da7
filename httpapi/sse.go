package httpapi

import (
	"bufio"
	"net/http"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapecache"
)

// serveSSE answers live_sse=true: entries already available are sent and
// the response ends; otherwise the stream stays open and sends each new
// batch followed by up-to-date, with keep-alive comments, until SSETimeout.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, req *request, e *shapecache.Entry) {
	res, ok := s.read(w, r, req, e, false, 0)
	if !ok {
		return
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
	bw, sw := s.bodyWriter(w, bodyBuffer)
	send := func(msgs [][]byte, upToDate bool, lsn uint64) bool {
		for _, m := range msgs {
			writeEvent(bw, m)
		}
		if upToDate {
			writeEvent(bw, shape.UpToDate(lsn))
		}
		return bw.Flush() == nil && sw.Flush() == nil
	}
	if len(res.Entries) > 0 {
		send(res.Entries, atHead, res.End.LSN)
		return
	}
	if sw.Flush() != nil {
		return
	}
	offset := req.offset
	timeout := time.NewTimer(s.Config.SSETimeout)
	defer timeout.Stop()
	keepAlive := time.NewTicker(s.Config.KeepAlive)
	defer keepAlive.Stop()
	for {
		if e.IsGone() {
			return
		}
		changed := e.Changed()
		res, err := s.readShared(e, offset, changed, nil)
		if err == nil && len(res.Entries) > 0 {
			if !send(res.Entries, res.AtHead, res.End.LSN) {
				return
			}
			offset = res.End
			keepAlive.Reset(s.Config.KeepAlive)
			continue
		}
		select {
		case <-changed:
		case <-e.Gone():
			return
		case <-keepAlive.C:
			_, _ = bw.WriteString(": keep-alive\n\n")
			if bw.Flush() != nil || sw.Flush() != nil {
				return
			}
		case <-timeout.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeEvent writes one SSE event holding msg; errors surface at Flush.
func writeEvent(bw *bufio.Writer, msg []byte) {
	_, _ = bw.WriteString("data: ")
	_, _ = bw.Write(msg)
	_, _ = bw.WriteString("\n\n")
}
