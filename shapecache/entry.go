package shapecache

import (
	"errors"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

// Entry is one shape: its definition, its log and its snapshot state.
//
// A server holds many idle shapes, so an Entry keeps its log open only
// while it is used: the log is opened on demand (acquire) and closed by the
// cache's janitor once idle. Waiters for new entries park on the Entry's
// own channel, which outlives the log being closed and reopened.
type Entry struct {
	Handle string
	Shape  *shape.Shape

	cache    *Cache
	gone     chan struct{} // closed when the shape is removed
	goneOnce sync.Once
	ready    chan struct{} // closed when the snapshot completed or failed
	snapErr  atomic.Pointer[error]
	// lastUsed is when a client last read the shape (unix milliseconds):
	// for expiry, and for removing a retired log once idle (compact.go).
	lastUsed atomic.Int64

	// Guarded by Cache.mu.
	snap    *postgres.SnapshotInfo // nil until the snapshot's identity is known
	pending []bufferedTxn          // transactions that arrived before it was
	retired bool                   // replaced by a compacted successor
	// compacting is set while a successor is being built; compactAfter
	// (unix ms) delays the next attempt after a failure.
	compacting   bool
	compactAfter int64
	// rows and ops count the shape's current rows and the messages a new
	// client downloads (compaction trigger); guarded by Cache.mu.
	rows, ops int64
	// sq is the state of a shape with subqueries (subquery.go), nil for
	// others; guarded by Cache.mu.
	sq *sqState

	// writeMu serialises Append, Sync and closing the log.
	writeMu sync.Mutex

	// lmu guards log, closed, refs and used.
	lmu sync.Mutex
	log *shapelog.Log
	// closed is the log the janitor last closed, if it closed cleanly:
	// acquire reopens it with Store.Reopen, which opens only the live
	// files (a shape whose log is closed and opened again on every
	// change, with more active shapes than open logs, must not pay a full
	// Open and recovery each time).
	closed *shapelog.Log
	refs   int
	used   int64 // monotonic tick of the last acquire, for LRU closing
	usedAt int64 // unix ms of the last acquire or release

	// nmu guards changed.
	nmu     sync.Mutex
	changed chan struct{}
}

type bufferedTxn struct {
	lsn     uint64
	xid     uint32
	entries []shapelog.Entry
	delta   delta
}

// closedChan is the ready channel of restored shapes.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newEntry(c *Cache, handle string, s *shape.Shape) *Entry {
	e := &Entry{Handle: handle, Shape: s, cache: c, gone: make(chan struct{}), ready: make(chan struct{})}
	e.lastUsed.Store(time.Now().UnixMilli())
	return e
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

func (e *Entry) markGone() {
	e.goneOnce.Do(func() { close(e.gone) })
	e.notify()
}

// Touch records that a client used the shape (for expiry).
func (e *Entry) Touch() {
	now := time.Now().UnixMilli()
	if e.lastUsed.Load() != now {
		e.lastUsed.Store(now)
	}
}

// skip reports whether a transaction must not enter this shape's log: it is
// already there (replayed after a reconnect or restart), or it is visible in
// the shape's snapshot and so already part of the initial rows.
func (e *Entry) skip(l *shapelog.Log, lsn uint64, xid uint32) bool {
	if lsn <= l.LastTxLSN() {
		return true
	}
	return lsn < e.snap.LSN && e.snap.Visible(xid)
}

// acquire returns the shape's log, opening it if needed; release must
// follow. The log stays open while acquired.
func (e *Entry) acquire() (*shapelog.Log, error) {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.log == nil {
		if e.IsGone() {
			return nil, ErrShapeGone
		}
		var l *shapelog.Log
		var err error
		if e.closed != nil {
			l, err = e.cache.Store.Reopen(e.closed)
			e.closed = nil
		} else {
			l, err = e.cache.Store.Open(e.Handle)
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// The catalog lists a shape whose files are gone.
				go e.cache.removeBroken(e)
				return nil, ErrShapeGone
			}
			return nil, err
		}
		l.OnChange(e.notify)
		e.log = l
		e.cache.logs.opened(e)
	}
	e.refs++
	e.used = e.cache.logs.tick.Add(1)
	e.usedAt = time.Now().UnixMilli()
	return e.log, nil
}

func (e *Entry) release() {
	e.lmu.Lock()
	e.refs--
	e.usedAt = time.Now().UnixMilli()
	e.lmu.Unlock()
}

// setLog installs a freshly created log (the entry is new: nobody else
// can hold it yet).
func (e *Entry) setLog(l *shapelog.Log) {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	l.OnChange(e.notify)
	e.log = l
	e.cache.logs.opened(e)
	e.used = e.cache.logs.tick.Add(1)
	e.usedAt = time.Now().UnixMilli()
}

// closeIfIdle syncs and closes the log unless it is in use or was used
// after tick before and after unix ms beforeMs. It reports whether the log
// is closed afterwards.
func (e *Entry) closeIfIdle(before, beforeMs int64) (closed bool, err error) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	e.lmu.Lock()
	l := e.log
	busy := l == nil || e.refs > 0 || (e.used > before && e.usedAt > beforeMs)
	e.lmu.Unlock()
	if l == nil {
		return true, nil
	}
	if busy || !l.SnapshotComplete() {
		return false, nil
	}
	// writeMu keeps appenders out; they acquire before taking it, so the
	// refs check above also covers an appender waiting for writeMu.
	if err := l.Sync(); err != nil {
		return false, err
	}
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.refs > 0 {
		return false, nil
	}
	e.log = nil
	if l.Close() == nil { // synced just above; nothing was appended since
		e.closed = l
	}
	return true, nil
}

// withLog runs fn on the acquired log.
func (e *Entry) withLog(fn func(l *shapelog.Log) error) error {
	l, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.release()
	return fn(l)
}

// appendLive appends a transaction's entries unless the log holds them
// already or the snapshot does (skip). e.snap must be set (it never
// changes after). It reports whether entries were appended, or found in
// the log already (replayed: the log must still be synced); a shape
// removed meanwhile is not an error.
//
// pre are control messages written before the entries, each at the offset
// of the entry before it with op+1 (subqueries.md §7.5; 1_0 after the
// snapshot alone).
func (e *Entry) appendLive(entries []shapelog.Entry, tx *volt.Transaction, pre [][]byte) (appended, replayed bool, err error) {
	l, err := e.acquire()
	if err != nil {
		if e.IsGone() {
			return false, false, nil
		}
		return false, false, err
	}
	defer e.release()
	if tx.CommitLSN <= l.LastTxLSN() {
		// Replayed after a restart: the entries are in the file already,
		// but perhaps not on disk (the process died before its fsync). The
		// log must be synced before the slot moves past this transaction.
		l.Unsynced()
		return false, true, nil
	}
	if e.skip(l, tx.CommitLSN, tx.Xid) {
		return false, false, nil
	}
	if len(pre) > 0 {
		at := l.Latest()
		if at.LSN == 0 {
			at = volt.Offset{LSN: 1, Op: 0}
		} else {
			at.Op++
		}
		all := make([]shapelog.Entry, 0, len(pre)+len(entries))
		for _, p := range pre {
			all = append(all, shapelog.Entry{Offset: at, JSON: p})
			at.Op++
		}
		entries = append(all, entries...)
	}
	if err := e.append(l, entries); err != nil {
		if e.IsGone() {
			return false, false, nil
		}
		return false, false, err
	}
	return true, false, nil
}

func (e *Entry) append(l *shapelog.Log, entries []shapelog.Entry) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	return l.Append(entries...)
}

// sync makes the appended entries durable; a closed log was synced when it
// was closed.
func (e *Entry) sync() error { return e.ifOpen((*shapelog.Log).Sync) }

// ifOpen runs fn on the log if it is open, holding writeMu so that it is
// not closed meanwhile; a closed log is left alone.
func (e *Entry) ifOpen(fn func(*shapelog.Log) error) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	e.lmu.Lock()
	l := e.log
	e.lmu.Unlock()
	if l == nil {
		return nil
	}
	return fn(l)
}

// notify wakes the goroutines parked in Changed.
func (e *Entry) notify() {
	e.nmu.Lock()
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
	e.nmu.Unlock()
}

// waited reports whether a channel from Changed was handed out since the
// log last changed: a client may be parked waiting on it.
func (e *Entry) waited() bool {
	e.nmu.Lock()
	defer e.nmu.Unlock()
	return e.changed != nil
}

// Changed returns a channel that is closed when the shape's log changes or
// the shape is removed. Take it before calling Read to miss nothing.
func (e *Entry) Changed() <-chan struct{} {
	e.nmu.Lock()
	defer e.nmu.Unlock()
	if e.IsGone() {
		return closedChan
	}
	if e.changed == nil {
		e.changed = make(chan struct{})
	}
	return e.changed
}

// Latest returns the offset of the last entry in the shape's log.
func (e *Entry) Latest() volt.Offset {
	var o volt.Offset
	if err := e.withLog(func(l *shapelog.Log) error { o = l.Latest(); return nil }); err != nil {
		return volt.SnapshotEnd
	}
	return o
}

// Read returns the log entries after offset, paged as Electric does.
func (e *Entry) Read(after volt.Offset) (res shapelog.ReadResult, err error) {
	e.Touch()
	err = e.withLog(func(l *shapelog.Log) error { res, err = l.Read(after); return err })
	if err != nil && e.IsGone() {
		err = ErrShapeGone
	}
	return res, err
}

// LastTxLSN returns the commit LSN of the last transaction in the log.
func (e *Entry) LastTxLSN() uint64 {
	var lsn uint64
	_ = e.withLog(func(l *shapelog.Log) error { lsn = l.LastTxLSN(); return nil })
	return lsn
}

// DiskUsage returns the bytes the shape's files take on disk.
func (e *Entry) DiskUsage() (int64, error) { return e.cache.Store.DiskUsage(e.Handle) }

// Locate returns where Read(after) would read, without reading: the
// caller streams the page with Page.Each and then calls release, which
// lets the log be closed again.
func (e *Entry) Locate(after volt.Offset) (p shapelog.Page, release func(), err error) {
	e.Touch()
	l, err := e.acquire()
	if err != nil {
		return shapelog.Page{}, nil, err
	}
	p, err = l.Locate(after)
	if err != nil {
		e.release()
		if e.IsGone() {
			err = ErrShapeGone
		}
		return shapelog.Page{}, nil, err
	}
	return p, e.release, nil
}
