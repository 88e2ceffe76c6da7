package shapecache

import (
	"sync"
	"sync/atomic"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

// Entry is one shape: its definition, its log and its snapshot state.
type Entry struct {
	Handle string
	Shape  *shape.Shape
	Log    *shapelog.Log

	gone     chan struct{} // closed when the shape is removed
	goneOnce sync.Once
	ready    chan struct{} // closed when the snapshot completed or failed
	snapErr  atomic.Pointer[error]

	// Guarded by Cache.mu.
	snap    *postgres.SnapshotInfo // nil until the snapshot's identity is known
	pending []bufferedTxn          // transactions that arrived before it was
	// writeMu serialises Append and Sync on the log.
	writeMu sync.Mutex
}

type bufferedTxn struct {
	lsn     uint64
	xid     uint32
	entries []shapelog.Entry
}

func newEntry(handle string, s *shape.Shape, log *shapelog.Log) *Entry {
	return &Entry{Handle: handle, Shape: s, Log: log, gone: make(chan struct{}), ready: make(chan struct{})}
}

// Gone is closed when the shape has been deleted or rotated.
func (e *Entry) Gone() <-chan struct{} { return e.gone }

// Ready is closed when the initial snapshot has completed or failed; Err
// then tells which.
func (e *Entry) Ready() <-chan struct{} { return e.ready }

// Err returns why the snapshot failed, after Ready is closed.
func (e *Entry) Err() error {
	if p := e.snapErr.Load(); p != nil {
		return *p
	}
	return nil
}

// IsGone reports whether the shape was removed.
func (e *Entry) IsGone() bool {
	select {
	case <-e.gone:
		return true
	default:
		return false
	}
}

func (e *Entry) markGone() { e.goneOnce.Do(func() { close(e.gone) }) }

// skip reports whether a transaction must not enter this shape's log: it is
// already there (replayed after a reconnect or restart), or it is visible in
// the shape's snapshot and so already part of the initial rows.
func (e *Entry) skip(lsn uint64, xid uint32) bool {
	if lsn <= e.Log.LastTxLSN() {
		return true
	}
	return lsn < e.snap.LSN && e.snap.Visible(xid)
}

func (e *Entry) append(entries []shapelog.Entry) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	return e.Log.Append(entries...)
}

func (e *Entry) sync() error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	return e.Log.Sync()
}

// Latest returns the offset of the last entry in the shape's log.
func (e *Entry) Latest() volt.Offset { return e.Log.Latest() }

// Changed returns a channel that is closed when the shape's log changes.
func (e *Entry) Changed() <-chan struct{} { return e.Log.Changed() }

// Read returns the log entries after offset, paged as Electric does.
func (e *Entry) Read(after volt.Offset) (shapelog.ReadResult, error) { return e.Log.Read(after) }

// LastTxLSN returns the commit LSN of the last transaction in the log.
func (e *Entry) LastTxLSN() uint64 { return e.Log.LastTxLSN() }
