package client

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/backoff"
)

// SSE fallback, as in the TypeScript client: connections that end sooner
// than sseShortConn count as short; after sseMaxShort in a row the stream
// long-polls for good.
const (
	sseShortConn = time.Second
	sseMaxShort  = 3
)

// followSSE opens one SSE connection (with retries) and delivers its
// batches until it ends.
func (s *Stream) followSSE(ctx context.Context, fn func(Batch) error) error {
	resp, err := s.openSSE(ctx)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !isEventStream(resp.Header) {
		// A 409, a 204 or a plain JSON answer from a server or proxy that
		// does not stream.
		body, err := io.ReadAll(resp.Body)
		if err == nil && emptyAnswer(resp.StatusCode, resp.Header, body) {
			err = errEmptyAnswer
		}
		if err != nil {
			// The connection broke or the server is going away: try again.
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return backoff.Sleep(ctx, s.failed(err, 0))
		}
		return s.handleAnswer(ctx, resp.StatusCode, resp.Header, body, true, fn)
	}
	handle, offset, err := positionHeaders(resp.Header)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if c := resp.Header.Get(volt.HeaderCursor); c != "" {
		s.cursor = c
	}
	s.mu.Unlock()
	start := time.Now()
	c := &sseConn{s: s, handle: handle, headerOffset: offset, fn: fn}
	if err := c.read(resp.Body); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return s.afterSSE(ctx, time.Since(start))
}

// openSSE sends the SSE request until it gets a usable answer.
func (s *Stream) openSSE(ctx context.Context) (*http.Response, error) {
	for {
		resp, err := s.send(ctx, s.requestURL(true, true), true)
		if err == nil && ok(resp.StatusCode) {
			s.succeeded()
			return resp, nil
		}
		var status int
		var h http.Header
		var body []byte
		if err == nil {
			status, h = resp.StatusCode, resp.Header
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		wait, err := s.retryWait(ctx, status, h, body, err)
		if err != nil {
			return nil, err
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func isEventStream(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "text/event-stream"
}

// afterSSE counts short connections, backs off after one and falls back to
// long polling after sseMaxShort in a row.
func (s *Stream) afterSSE(ctx context.Context, lasted time.Duration) error {
	if lasted >= sseShortConn {
		s.sseShort = 0
		s.sseWait.Reset()
		return nil
	}
	s.sseShort++
	if s.sseShort >= sseMaxShort {
		s.sseOff = true
		return nil
	}
	return s.sseWait.Wait(ctx)
}

// sseConn reads one SSE connection. Events are buffered until an
// up-to-date message and then delivered as one batch.
type sseConn struct {
	s            *Stream
	fn           func(Batch) error
	handle       string
	headerOffset string // the end of what the server had when it answered
	delivered    bool
	pending      []Event
}

// read parses the event stream until it ends. It returns only errors that
// end the stream (bad messages, fn's errors); a broken connection is just
// the end.
func (c *sseConn) read(body io.Reader) error {
	r := bufio.NewReader(body)
	var data []byte
	hasData := false
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // an unterminated event is dropped, as the SSE spec says
		}
		if err != nil {
			return nil // broken off: what is pending may be incomplete
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			if hasData {
				if err := c.dispatch(data); err != nil {
					return err
				}
			}
			data, hasData = data[:0], false
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(field) == 0 || string(field) != "data" {
			continue // a comment (": keep-alive") or a field we do not use
		}
		if hasData {
			data = append(data, '\n')
		}
		data = append(data, bytes.TrimPrefix(value, []byte(" "))...)
		hasData = true
	}
	return c.finish()
}

// dispatch handles one event's data: a JSON message.
func (c *sseConn) dispatch(data []byte) error {
	ev, err := decodeMessage(data, c.s.Schema())
	if err != nil || ev == nil {
		return err
	}
	c.pending = append(c.pending, ev)
	if u, ok := ev.(*UpToDate); ok {
		// Like the TypeScript client, resume at "<lsn>_0" (possibly
		// re-reading the end of that transaction); the first batch of a
		// connection reaches the offset the answer's header named.
		off := offsetMax(c.s.Offset(), lsnOffset(u.LSN))
		if !c.delivered {
			off = offsetMax(off, c.headerOffset)
		}
		return c.deliver(off, true)
	}
	return nil
}

// finish delivers what a connection that ended cleanly sent without a
// final up-to-date: only when it is the answer's initial part, which ends
// at headerOffset.
func (c *sseConn) finish() error {
	if len(c.pending) == 0 || c.delivered {
		return nil
	}
	return c.deliver(offsetMax(c.s.Offset(), c.headerOffset), false)
}

func (c *sseConn) deliver(offset string, upToDate bool) error {
	b := Batch{Events: c.pending, Handle: c.handle, Offset: offset}
	c.pending = nil
	if err := c.fn(b); err != nil {
		return err
	}
	s := c.s
	s.mu.Lock()
	s.handle, s.offset = c.handle, offset
	s.live = s.live || upToDate
	s.mu.Unlock()
	c.delivered = true
	return nil
}
