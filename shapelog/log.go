package shapelog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/voltsync/volt"
)

// Log is one shape's log: the initial snapshot followed by live entries.
//
// One goroutine may write the snapshot (AppendSnapshot, FinishSnapshot)
// while another writes live entries (Append, Sync); the two may overlap.
// Any number of goroutines may call Read, Latest and the other
// accessors concurrently with the writers.
type Log struct {
	store      *Store
	handle     string
	dir        string
	chunkBytes int64
	// idxBase is where snapshot index record 0 starts in snapshot.idx:
	// snapIdxSize after the header that records the chunk threshold, or
	// 0 in a log of the first layout (a format file beside it).
	idxBase int64

	// mu guards v and fail: the state readers see.
	mu   sync.Mutex
	v    view
	fail error
	// onChange is called (under mu) whenever new content is published;
	// see OnChange.
	onChange func()

	// Lock order: smu, wmu, syncMu, mu.
	wmu sync.Mutex // live writer: live file writes, lw
	// live and liveIdx are nil until the first Append creates them; they
	// are set before any view with live entries is published, so a
	// reader that sees live entries sees the files.
	live    *os.File
	liveNew atomic.Bool // the live files' directory entries are not synced yet
	lw      liveWriter
	syncMu  sync.Mutex // Sync: liveIdx writes, idxRecs
	// liveIdx holds the sealed live chunks that are durable.
	liveIdx *os.File
	idxRecs int64
	// syncedEnd is the live file size at the last fsync, or as Open found
	// it: Sync skips the fsync while it is unchanged. What Open found may
	// not be on disk yet if the process died before its fsync; an owner
	// that relies on it (replays it) calls Unsynced first.
	syncedEnd int64

	smu     sync.Mutex // snapshot writer: snap, snapIdx, sw
	snap    *os.File
	snapIdx *os.File
	sw      snapWriter
	// fmu guards snap and snapIdx where readers open them lazily: a log
	// reopened with a complete snapshot keeps only its live files open
	// until a client reads the snapshot (see snapReader).
	fmu sync.Mutex

	// clean is set (under smu and wmu) when Close synced everything and
	// closed the files without error: Store.Reopen may then trust the
	// state this Log holds instead of recovering it from the files.
	clean bool
}

// view is the published state of a Log. Readers copy it under mu and then
// read only file ranges it describes, which the writers never modify.
type view struct {
	closed       bool
	snapChunks   int64 // sealed snapshot chunks
	snapComplete bool
	// snapOpen is the file position where the open snapshot chunk starts
	// and snapWritten the end of the snapshot rows written to the file so
	// far (whole records): [snapOpen, snapWritten) is readable before the
	// chunk is sealed (LocateWritten).
	snapOpen, snapWritten int64

	liveEnd    int64      // readable bytes of the live file
	idxCount   int64      // sealed live chunks recorded in the live index file
	pending    []chunkRec // sealed live chunks not yet in the index file
	lastSealed chunkRec   // the last sealed live chunk, if any
	tailStart  int64      // file position of the open live chunk
	tail       []tailPoint
	latest     volt.Offset // last live entry, or SnapshotEnd
	hasLive    bool
}

// sealedCount is the number of sealed live chunks.
func (v *view) sealedCount() int64 { return v.idxCount + int64(len(v.pending)) }

// openLog opens and recovers the log in dir.
// With create (a directory Create just built, empty) the data files are
// created, with the store's chunk threshold in the snapshot index's
// header.
func openLog(s *Store, handle, dir string, create bool) (*Log, error) {
	chunk, flags := int64(s.opts.ChunkBytes), os.O_RDWR|os.O_CREATE|os.O_EXCL
	base := int64(snapIdxSize)
	if !create {
		flags = os.O_RDWR
		// A log of the first layout has a format file; a newer one keeps
		// the threshold in the snapshot index's header (read below).
		c, err := readFormat(dir)
		switch {
		case err == nil:
			chunk, base = c, 0
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	l := &Log{store: s, handle: handle, dir: dir, chunkBytes: chunk, idxBase: base, syncedEnd: -1}
	files := []**os.File{&l.snap, &l.snapIdx}
	names := []string{snapFile, snapIdxFile}
	for i, name := range names {
		f, err := os.OpenFile(filepath.Join(dir, name), flags, 0o644)
		if err != nil {
			l.closeFiles()
			return nil, err
		}
		*files[i] = f
	}
	if base != 0 {
		if err := l.indexHeader(create); err != nil {
			l.closeFiles()
			return nil, err
		}
	}
	// The live files exist once something was appended (createLive): a
	// shape that never changed costs two inodes fewer.
	if !create {
		if err := l.openLive(); err != nil {
			l.closeFiles()
			return nil, err
		}
	}
	if err := l.recoverSnapshot(); err != nil {
		l.closeFiles()
		return nil, err
	}
	if !create && l.sw.complete {
		// Nothing writes the snapshot any more: its files are opened
		// again when a client reads it.
		err := errors.Join(l.snap.Close(), l.snapIdx.Close())
		l.snap, l.snapIdx = nil, nil
		if err != nil {
			l.closeFiles()
			return nil, err
		}
	}
	if err := l.recoverLive(); err != nil {
		l.closeFiles()
		return nil, err
	}
	l.syncedEnd = l.v.liveEnd
	return l, nil
}

// Handle returns the shape handle of the log.
func (l *Log) Handle() string { return l.handle }

// ChunkBytes returns the chunk threshold of the log.
func (l *Log) ChunkBytes() int { return int(l.chunkBytes) }

// load returns a copy of the published state.
func (l *Log) load() view {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v
}

// publish applies fn to the published state and tells OnChange's callback.
func (l *Log) publish(fn func(v *view)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(&l.v)
	if !l.v.closed && l.onChange != nil {
		l.onChange()
	}
}

// Unsynced makes the next Sync fsync the live file even if nothing was
// appended since Open: for an owner that finds a transaction it is about
// to rely on already in the log and cannot tell whether it reached the
// disk. The live files' names are in the same position (a process that
// died between their creation and its first Sync never synced the
// directory), so that Sync syncs the directory too.
func (l *Log) Unsynced() {
	l.syncMu.Lock()
	l.syncedEnd = -1
	l.syncMu.Unlock()
	l.fmu.Lock()
	if l.live != nil {
		l.liveNew.Store(true)
	}
	l.fmu.Unlock()
}

// OnChange registers fn to be called whenever new content becomes
// readable: a snapshot chunk is sealed, the snapshot completes or appended
// live entries become readable (not on Close). It
// lets an owner that closes idle logs wake its own waiters. fn runs with
// the log's internal lock held: it must not call back into the log.
func (l *Log) OnChange(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onChange = fn
}

// failed returns the sticky write error, or ErrClosed.
func (l *Log) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.v.closed {
		return ErrClosed
	}
	return l.fail
}

// setFail records a write error; every later write returns it.
func (l *Log) setFail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail == nil {
		l.fail = err
	}
	return err
}

func (l *Log) isClosed() bool { return l.load().closed }

// Latest returns the offset of the last live entry, or volt.SnapshotEnd
// (0_inf) when there is none.
func (l *Log) Latest() volt.Offset { return l.load().latest }

// LastTxLSN returns the commit LSN of the last transaction (0 if none):
// every Append is a whole transaction, so it is Latest's LSN.
func (l *Log) LastTxLSN() uint64 { return l.load().latest.LSN }

// SnapshotComplete reports whether FinishSnapshot has made the snapshot
// durable.
func (l *Log) SnapshotComplete() bool { return l.load().snapComplete }

// Close syncs the live log and closes the files; later calls return
// ErrClosed. An unfinished snapshot is lost.
func (l *Log) Close() error {
	err := l.close()
	l.store.forget(l.handle, l)
	return err
}

func (l *Log) close() error {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.isClosed() {
		return ErrClosed
	}
	err := errors.Join(l.syncSnapLocked(), l.Sync())
	l.mu.Lock()
	l.v.closed = true
	l.mu.Unlock()
	if cerr := l.closeFiles(); err == nil {
		err = cerr
	}
	l.clean = err == nil
	return err
}

// snapReader returns the snapshot files for reading, opening them if a
// reopened log closed them.
func (l *Log) snapReader() (snap, idx *os.File, err error) {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if l.snap != nil {
		return l.snap, l.snapIdx, nil
	}
	if l.isClosed() {
		return nil, nil, ErrClosed
	}
	if snap, err = os.Open(filepath.Join(l.dir, snapFile)); err != nil {
		return nil, nil, err
	}
	if idx, err = os.Open(filepath.Join(l.dir, snapIdxFile)); err != nil {
		snap.Close()
		return nil, nil, err
	}
	l.snap, l.snapIdx = snap, idx
	return snap, idx, nil
}

func (l *Log) closeFiles() error {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	var errs []error
	for _, f := range []*os.File{l.snap, l.snapIdx, l.live, l.liveIdx} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// reopen returns a new Log over the same files, with the state of c, a
// log closed cleanly (Store.Reopen checked it) with a complete snapshot
// and live files: only those are opened.
func (c *Log) reopen() (*Log, error) {
	live, err := openLiveFile(c.dir, liveFile, false)
	if err != nil {
		return nil, err
	}
	idx, err := openLiveFile(c.dir, liveIdxFile, false)
	if err != nil {
		live.Close()
		return nil, err
	}
	// A cheap check that the files are the ones c closed: the live file
	// has the length c wrote (no one else appended to it meanwhile).
	if size, err := fileSize(live); err != nil || size != c.lw.size {
		closeAll(live, idx)
		if err == nil {
			err = fmt.Errorf("live file is %d bytes, not %d as closed", size, c.lw.size)
		}
		return nil, err
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	l := &Log{store: c.store, handle: c.handle, dir: c.dir, chunkBytes: c.chunkBytes, idxBase: c.idxBase,
		live: live, liveIdx: idx, idxRecs: c.idxRecs, syncedEnd: c.syncedEnd,
		lw: liveWriter{size: c.lw.size, ck: c.lw.ck, latest: c.lw.latest, hasLive: c.lw.hasLive},
		sw: snapWriter{size: c.sw.size, sealed: c.sw.sealed, complete: true}}
	// The state moves to l: reopening c again (once l has written more)
	// must recover from the files.
	c.clean = false
	c.mu.Lock()
	l.v = c.v
	c.mu.Unlock()
	l.v.closed = false
	return l, nil
}

// indexHeader writes (create) or reads the snapshot index's header, which
// records the chunk threshold. A header that is missing or torn can only
// be one that was never synced: the snapshot index it starts was not
// either, so the snapshot is discarded on recovery anyway, and the
// header is written again with the store's threshold.
func (l *Log) indexHeader(create bool) error {
	if !create {
		var b [snapIdxSize]byte
		if n, err := l.snapIdx.ReadAt(b[:], 0); err != nil && n < len(b) && !errors.Is(err, io.EOF) {
			return err
		}
		if chunk, ok := decodeIdxHeader(b[:]); ok {
			l.chunkBytes = chunk
			return nil
		}
		if err := l.snapIdx.Truncate(0); err != nil {
			return err
		}
	}
	if _, err := l.snapIdx.WriteAt(encodeIdxHeader(l.chunkBytes), 0); err != nil {
		return err
	}
	return nil
}
