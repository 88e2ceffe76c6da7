package shapelog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/voltsync/volt"
)

// Entry is one live log entry: an encoded JSON message and its offset.
type Entry struct {
	Offset volt.Offset
	JSON   []byte
}

// tailStep is the spacing (in file bytes) of the sparse in-memory index of
// the open live chunk, which lets a reader near the head skip most of it.
const tailStep = 16 << 10

// maxKeptBuf bounds the encode buffer kept between Append calls.
const maxKeptBuf = 1 << 20

// tailPoint is a sample of the open chunk: the entry at file position pos
// has offset off.
type tailPoint struct {
	off volt.Offset
	pos int64
}

// chunker cuts the live log into chunks by JSON bytes. Append and recovery
// both feed every entry through it, which keeps boundaries identical across
// restarts.
type chunker struct {
	threshold int64
	start     int64 // file position of the open chunk
	bytes     int64 // JSON bytes in the open chunk
	tail      []tailPoint
}

// add accounts for the record at pos of recLen bytes and reports the chunk
// it seals, if any.
func (c *chunker) add(pos, recLen int64, jsonLen int, off volt.Offset, txEnd bool) (chunkRec, bool) {
	if n := len(c.tail); n == 0 || pos-c.tail[n-1].pos >= tailStep {
		c.tail = append(c.tail, tailPoint{off: off, pos: pos})
	}
	c.bytes += int64(jsonLen)
	if c.bytes < c.threshold {
		return chunkRec{}, false
	}
	end := pos + recLen
	c.start, c.bytes, c.tail = end, 0, nil // a fresh tail: readers may hold the old one
	return chunkRec{end: end, last: off, txEnd: txEnd}, true
}

// liveWriter is the live writer's private state (guarded by wmu).
type liveWriter struct {
	size    int64 // bytes written to the live file
	ck      chunker
	latest  volt.Offset
	hasLive bool
	buf     []byte
}

// Append writes the entries of one transaction. Offsets must be real
// (LSN > 0, op not inf), strictly increasing and after every earlier live
// entry. The entries are readable when Append returns and durable after
// the next Sync. After an I/O error the Log refuses further writes; close
// and reopen it to recover.
func (l *Log) Append(entries ...Entry) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.failed(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	if err := l.checkEntries(entries); err != nil {
		return err
	}
	if l.live == nil {
		if err := l.createLive(); err != nil {
			return l.setFail(fmt.Errorf("shapelog: append: %w", err))
		}
	}
	w := &l.lw
	w.buf = w.buf[:0]
	pos := w.size
	var sealed []chunkRec
	for i, e := range entries {
		txEnd := i == len(entries)-1
		start := len(w.buf)
		w.buf = appendLiveRecord(w.buf, e.Offset, e.JSON, txEnd)
		recLen := int64(len(w.buf) - start)
		if rec, ok := w.ck.add(pos, recLen, len(e.JSON), e.Offset, txEnd); ok {
			sealed = append(sealed, rec)
		}
		pos += recLen
	}
	if _, err := l.live.WriteAt(w.buf, w.size); err != nil {
		return l.setFail(fmt.Errorf("shapelog: append: %w", err))
	}
	if cap(w.buf) > maxKeptBuf {
		w.buf = nil
	}
	w.size, w.latest, w.hasLive = pos, entries[len(entries)-1].Offset, true
	l.publishLive(sealed)
	return nil
}

// checkEntries validates the offsets and sizes of one Append call.
func (l *Log) checkEntries(entries []Entry) error {
	prev, hasPrev := l.lw.latest, l.lw.hasLive
	for _, e := range entries {
		o := e.Offset
		if o.IsBeforeAll() || o.LSN == 0 || o.Op == volt.OpInf {
			return fmt.Errorf("shapelog: append: %v is not a real entry offset", o)
		}
		if hasPrev && !prev.Less(o) {
			return fmt.Errorf("shapelog: append: offset %v is not after %v", o, prev)
		}
		if len(e.JSON) > maxEntrySize {
			return fmt.Errorf("shapelog: append: entry of %d bytes is too large", len(e.JSON))
		}
		prev, hasPrev = o, true
	}
	return nil
}

// publishLive makes the writer's state visible to readers.
func (l *Log) publishLive(sealed []chunkRec) {
	w := &l.lw
	l.publish(func(v *view) {
		v.liveEnd = w.size
		v.pending = append(v.pending, sealed...)
		if len(sealed) > 0 {
			v.lastSealed = sealed[len(sealed)-1]
		}
		v.tailStart, v.tail = w.ck.start, w.ck.tail
		v.latest, v.hasLive = w.latest, w.hasLive
	})
}

// Sync makes every entry appended so far durable: it fsyncs the live file,
// then records the chunks sealed since the last Sync in the chunk index
// and fsyncs that too. The index therefore never refers to data that is
// not durable. Sync may be called concurrently with Append.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.failed(); err != nil {
		return err
	}
	v := l.load()
	pend := v.pending
	if v.liveEnd == 0 || v.liveEnd == l.syncedEnd && len(pend) == 0 {
		return nil // nothing appended (no live files), or nothing since the last Sync
	}
	if err := l.store.fsync(l.live); err != nil {
		return l.setFail(fmt.Errorf("shapelog: sync: %w", err))
	}
	if l.liveNew.Load() {
		// The files were created by Append: their names must be durable
		// too before anyone relies on what they hold.
		if err := l.store.syncDir(l.dir); err != nil {
			return l.setFail(fmt.Errorf("shapelog: sync: %w", err))
		}
		l.liveNew.Store(false)
	}
	l.syncedEnd = v.liveEnd
	if len(pend) == 0 {
		return nil
	}
	if err := l.writeIdx(pend); err != nil {
		return err
	}
	l.mu.Lock()
	l.v.idxCount += int64(len(pend))
	l.v.pending = append([]chunkRec(nil), l.v.pending[len(pend):]...)
	l.mu.Unlock()
	return nil
}

// createLive creates the live files at the first Append (wmu held). A
// leftover of a crash (files created, nothing durable in them) is reused.
func (l *Log) createLive() error {
	live, err := openLiveFile(l.dir, liveFile, true)
	if err != nil {
		return err
	}
	idx, err := openLiveFile(l.dir, liveIdxFile, true)
	if err != nil {
		live.Close()
		return err
	}
	l.setLive(live, idx, true)
	return nil
}

// openLive opens the live files of a reopened log, if it has them. When
// only one of them exists (a crash between their creation), the other is
// created empty: an empty index or an empty live file is a valid state.
func (l *Log) openLive() error {
	live, errLive := openLiveFile(l.dir, liveFile, false)
	idx, errIdx := openLiveFile(l.dir, liveIdxFile, false)
	noLive, noIdx := errors.Is(errLive, fs.ErrNotExist), errors.Is(errIdx, fs.ErrNotExist)
	if noLive && noIdx {
		return nil
	}
	if noLive {
		live, errLive = openLiveFile(l.dir, liveFile, true)
	}
	if noIdx {
		idx, errIdx = openLiveFile(l.dir, liveIdxFile, true)
	}
	if err := errors.Join(errLive, errIdx); err != nil {
		closeAll(live, idx)
		return err
	}
	l.setLive(live, idx, noLive || noIdx)
	return nil
}

func openLiveFile(dir, name string, create bool) (*os.File, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	return openRegular(filepath.Join(dir, name), flags, 0o644)
}

// openRegular opens a regular file as os.OpenFile does, in two system
// calls instead of six: os.OpenFile tries to add every file it opens to
// the network poller (making it non-blocking, failing to register a
// regular file, making it blocking again), which the live files, opened
// again on every change of a shape whose log the janitor closed, do not
// need.
func openRegular(path string, flags int, perm uint32) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, flags|syscall.O_CLOEXEC, perm)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// setLive installs the live files; created says that a name may be new,
// so the next Sync must sync the directory.
func (l *Log) setLive(live, idx *os.File, created bool) {
	l.fmu.Lock()
	l.live, l.liveIdx = live, idx
	l.fmu.Unlock()
	if created {
		l.liveNew.Store(true)
	}
}

// writeIdx appends records to the live chunk index and fsyncs it
// (syncMu held, or during Open).
func (l *Log) writeIdx(recs []chunkRec) error {
	b := make([]byte, 0, len(recs)*liveIdxSize)
	for _, r := range recs {
		b = append(b, encodeLiveIdx(r)...)
	}
	if _, err := l.liveIdx.WriteAt(b, l.idxRecs*liveIdxSize); err != nil {
		return l.setFail(fmt.Errorf("shapelog: chunk index: %w", err))
	}
	if err := l.store.fsync(l.liveIdx); err != nil {
		return l.setFail(fmt.Errorf("shapelog: chunk index sync: %w", err))
	}
	l.idxRecs += int64(len(recs))
	return nil
}
