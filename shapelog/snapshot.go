package shapelog

import (
	"errors"
	"fmt"
	"sync"
)

// ErrSnapshotDone is returned by AppendSnapshot and FinishSnapshot once the
// snapshot is complete.
var ErrSnapshotDone = errors.New("shapelog: snapshot already complete")

// snapFlushBytes bounds the snapshot rows buffered in memory before they
// are written to the file. Written rows of the open chunk are readable
// through LocateWritten (a client can receive a chunk while it is being
// written), so this is also the granularity at which they reach it.
const snapFlushBytes = 64 << 10

// snapBufs recycles the snapshot writers' buffers (*[]byte): creating
// many small shapes would otherwise grow a fresh buffer to
// snapFlushBytes for each.
var snapBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, snapFlushBytes+snapFlushBytes/4)
	return &b
}}

// snapWriter is the snapshot writer's private state (guarded by smu).
type snapWriter struct {
	size       int64   // bytes written to the snapshot file
	buf        []byte  // encoded rows not yet written
	pooled     *[]byte // where buf came from (snapBufs), nil once returned
	chunkBytes int64   // running size of the open chunk (row bytes + 1 per row)
	sealed     int64   // sealed chunks
	complete   bool
	unsynced   bool // finished with Options.DeferSnapshotSync, not fsynced yet
}

// AppendSnapshot adds one row (an encoded JSON message) to the snapshot.
// After adding a row of n bytes the running chunk size grows by n+1; when
// it reaches the chunk threshold the chunk is sealed after that row and
// becomes readable.
func (l *Log) AppendSnapshot(row []byte) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	if err := l.snapWritable(); err != nil {
		return err
	}
	if len(row) > maxEntrySize {
		return fmt.Errorf("shapelog: snapshot row of %d bytes is too large", len(row))
	}
	if l.sw.pooled == nil {
		l.sw.pooled = snapBufs.Get().(*[]byte)
		l.sw.buf = (*l.sw.pooled)[:0]
	}
	l.sw.buf = appendSnapRecord(l.sw.buf, row)
	l.sw.chunkBytes += int64(len(row)) + 1
	if l.sw.chunkBytes >= l.chunkBytes {
		return l.sealSnap(false)
	}
	if len(l.sw.buf) >= snapFlushBytes {
		if err := l.flushSnap(); err != nil {
			return err
		}
		written := l.sw.size
		l.publish(func(v *view) { v.snapWritten = written })
	}
	return nil
}

// snapWritable returns why the snapshot takes no more rows, or nil (under
// smu).
func (l *Log) snapWritable() error {
	if err := l.failed(); err != nil {
		return err
	}
	if l.sw.complete {
		return ErrSnapshotDone
	}
	return nil
}

// FinishSnapshot appends last (the snapshot-end control message) to the
// last chunk, seals it, fsyncs the snapshot and durably marks it complete.
func (l *Log) FinishSnapshot(last []byte) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	if err := l.snapWritable(); err != nil {
		return err
	}
	if len(last) == 0 || len(last) > maxEntrySize {
		return fmt.Errorf("shapelog: FinishSnapshot needs a control message (got %d bytes)", len(last))
	}
	l.sw.buf = appendSnapRecord(l.sw.buf, last)
	l.sw.chunkBytes += int64(len(last)) + 1
	return l.sealSnap(true)
}

// SyncSnapshot makes a snapshot finished under Options.DeferSnapshotSync
// durable; otherwise it does nothing.
func (l *Log) SyncSnapshot() error {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.syncSnapLocked()
}

// headerSynced reports whether the snapshot index, with its header, is
// durable: the snapshot is complete and synced (a log of the first
// layout keeps its threshold in the format file instead).
func (l *Log) headerSynced() bool {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.idxBase != 0 && l.sw.complete && !l.sw.unsynced && l.failed() == nil
}

func (l *Log) syncSnapLocked() error {
	if !l.sw.unsynced {
		return nil
	}
	if err := l.store.fsync(l.snap); err != nil {
		return l.setFail(err)
	}
	if err := l.store.fsync(l.snapIdx); err != nil {
		return l.setFail(err)
	}
	l.sw.unsynced = false
	return nil
}

func (l *Log) flushSnap() error {
	if len(l.sw.buf) == 0 {
		return nil
	}
	if _, err := l.snap.WriteAt(l.sw.buf, l.sw.size); err != nil {
		return l.setFail(err)
	}
	l.sw.size += int64(len(l.sw.buf))
	l.sw.buf = l.sw.buf[:0]
	return nil
}

// sealSnap ends the open chunk. The final seal fsyncs the data and the
// earlier index records before writing the record that carries the
// complete flag, so that flag is never durable ahead of what it covers.
func (l *Log) sealSnap(final bool) error {
	if err := l.flushSnap(); err != nil {
		return err
	}
	deferred := final && l.store.opts.DeferSnapshotSync
	if final && !deferred {
		if err := l.store.fsync(l.snap); err != nil {
			return l.setFail(err)
		}
		if err := l.store.fsync(l.snapIdx); err != nil {
			return l.setFail(err)
		}
	}
	rec := encodeSnapIdx(l.sw.size, final)
	if _, err := l.snapIdx.WriteAt(rec, l.idxBase+l.sw.sealed*snapIdxSize); err != nil {
		return l.setFail(err)
	}
	if final && !deferred {
		if err := l.store.fsync(l.snapIdx); err != nil {
			return l.setFail(err)
		}
	}
	if final {
		// The log may stay open, idle, for long: its buffer goes back
		// to the pool for the next snapshot (unless a huge row grew it).
		if p := l.sw.pooled; p != nil && cap(l.sw.buf) <= 4*snapFlushBytes {
			*p = l.sw.buf[:0]
			snapBufs.Put(p)
		}
		l.sw.buf, l.sw.pooled = nil, nil
		l.sw.unsynced = deferred
	}
	l.sw.sealed++
	l.sw.chunkBytes = 0
	l.sw.complete = final
	sealed, end := l.sw.sealed, l.sw.size
	l.publish(func(v *view) {
		v.snapChunks = sealed
		v.snapComplete = final
		v.snapOpen, v.snapWritten = end, end
	})
	return nil
}

// recoverSnapshot restores the snapshot state on Open. A complete snapshot
// is kept as is; an unfinished one cannot be resumed (its query is gone)
// and is discarded, leaving an empty, incomplete snapshot.
func (l *Log) recoverSnapshot() error {
	idxSize, err := fileSize(l.snapIdx)
	if err != nil {
		return err
	}
	dataSize, err := fileSize(l.snap)
	if err != nil {
		return err
	}
	base := l.idxBase
	n := (idxSize - base) / snapIdxSize
	if n > 0 {
		var b [snapIdxSize]byte
		if _, err := l.snapIdx.ReadAt(b[:], base+(n-1)*snapIdxSize); err != nil {
			return err
		}
		end, complete, ok := decodeSnapIdx(b[:])
		if ok && complete && end <= dataSize {
			l.sw = snapWriter{size: end, sealed: n, complete: true}
			l.v.snapChunks, l.v.snapComplete = n, true
			l.v.snapOpen, l.v.snapWritten = end, end
			return l.truncateIfLonger(l.snapIdx, idxSize, base+n*snapIdxSize, l.truncateIfLonger(l.snap, dataSize, end, nil))
		}
	}
	err = l.truncateIfLonger(l.snap, dataSize, 0, nil)
	return l.truncateIfLonger(l.snapIdx, idxSize, base, err)
}
