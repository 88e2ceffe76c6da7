package httpapi

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shapecache"
	"github.com/voltsync/volt/shapelog"
)

// Request collapsing. Clients of one shape tend to ask for the same thing
// at the same moment: thousands start at offset=-1 together, and every
// long-poll parked at the head wakes on the same change and reads from the
// same offset. Reads of one (shape, offset) are therefore shared: the first
// request reads the log, requests arriving meanwhile wait for its result,
// and later ones reuse it while it is still what a new read would return.
// Responses share the result's entries (one buffer); headers, cursors and
// the up-to-date message stay per request.
//
// A result is reused only by a request that took the same Changed channel
// before reading (nothing was appended since the read started), or when it
// is a snapshot chunk, which never changes. Results are dropped after
// sharedReadTTL so that an idle shape does not keep a chunk in memory.

// sharedReadTTL is how long a finished read may be reused.
const sharedReadTTL = time.Second

// sharedReads holds the latest read of each (shape, offset).
type sharedReads struct {
	mu sync.Mutex
	m  map[readKey]*sharedRead
	// calls counts the reads done (tests check collapsing with it).
	calls atomic.Int64
}

type readKey struct {
	e     *shapecache.Entry
	after volt.Offset
}

// sharedRead is one read of the log; res and err are set when done closes.
type sharedRead struct {
	gen  <-chan struct{} // the log's Changed channel taken before reading
	done chan struct{}
	res  shapelog.ReadResult
	err  error
}

// reusable reports whether a request that took gen may use r's result
// without waiting: r is finished and either read after gen was current or
// is a snapshot chunk.
func (r *sharedRead) reusable(gen <-chan struct{}) bool {
	if r.gen == gen {
		return true
	}
	select {
	case <-r.done:
		return r.err == nil && r.res.End.InSnapshot() && r.res.End.Op != volt.OpInf
	default:
		return false
	}
}

// readShared reads e's log after offset, sharing the read with concurrent
// and recent identical ones. changed is the log's Changed channel, taken
// before the read (and before locating p): wait on it for anything newer.
// A page the caller has located already (p, of e's log, after offset) is
// read instead of locating it again.
func (s *Server) readShared(e *shapecache.Entry, after volt.Offset, changed <-chan struct{}, p *shapelog.Page) (res shapelog.ReadResult, err error) {
	k := readKey{e, after}
	sr := &s.reads
	sr.mu.Lock()
	if r := sr.m[k]; r != nil && r.reusable(changed) {
		sr.mu.Unlock()
		<-r.done
		return r.res, r.err
	}
	r := &sharedRead{gen: changed, done: make(chan struct{})}
	if sr.m == nil {
		sr.m = map[readKey]*sharedRead{}
	}
	sr.m[k] = r
	sr.mu.Unlock()

	sr.calls.Add(1)
	if p != nil {
		r.res, r.err = p.Read()
	} else {
		r.res, r.err = e.Read(after)
	}
	close(r.done)
	ttl := sharedReadTTL
	if r.err != nil && !errors.Is(r.err, shapelog.ErrSnapshotPending) {
		ttl = 0 // shared with the requests already waiting, not kept
	}
	time.AfterFunc(ttl, func() { sr.forget(k, r) })
	return r.res, r.err
}

// forget drops r unless a newer read of k replaced it.
func (sr *sharedReads) forget(k readKey, r *sharedRead) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.m[k] == r {
		delete(sr.m, k)
	}
}
