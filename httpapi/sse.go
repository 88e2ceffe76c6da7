package httpapi

import (
	"net/http"
	"time"

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
	h.Del("electric-schema")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(msgs [][]byte, upToDate bool, lsn uint64) bool {
		for _, m := range msgs {
			if !writeEvent(w, m) {
				return false
			}
		}
		if upToDate && !writeEvent(w, shape.UpToDate(lsn)) {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if len(res.Entries) > 0 {
		send(res.Entries, atHead, res.End.LSN)
		return
	}
	if flusher != nil {
		flusher.Flush()
	}
	offset := req.offset
	timeout := time.NewTimer(s.Config.SSETimeout)
	defer timeout.Stop()
	keepAlive := time.NewTicker(s.Config.KeepAlive)
	defer keepAlive.Stop()
	for {
		changed := e.Changed()
		if e.IsGone() {
			return
		}
		if res, err := e.Read(offset); err == nil && len(res.Entries) > 0 {
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
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case <-timeout.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, msg []byte) bool {
	buf := make([]byte, 0, len(msg)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, msg...)
	buf = append(buf, '\n', '\n')
	_, err := w.Write(buf)
	return err == nil
}
