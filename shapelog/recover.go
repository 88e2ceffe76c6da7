package shapelog

import (
	"bufio"
	"errors"
	"hash/crc32"
	"io"
	"os"

	"github.com/voltsync/volt"
)

// recoverLive restores the live log on Open. It trusts the chunk index
// (whose records Sync writes only after the data they cover is durable),
// scans the live file from the end of the last indexed chunk, truncates it
// after the last complete transaction, and rebuilds the boundaries and
// sparse index of the unindexed tail.
func (l *Log) recoverLive() error {
	if l.live == nil {
		return l.rebuildTail(chunkRec{}, 0, volt.Offset{}) // nothing was ever appended
	}
	size, err := fileSize(l.live)
	if err != nil {
		return err
	}
	idxSize, err := fileSize(l.liveIdx)
	if err != nil {
		return err
	}
	base, n, end, latest, err := l.findTrustedTail(size, idxSize/liveIdxSize)
	if err != nil {
		return err
	}
	if err := l.truncateIfLonger(l.live, size, end, nil); err != nil {
		return err
	}
	if err := l.truncateIfLonger(l.liveIdx, idxSize, n*liveIdxSize, nil); err != nil {
		return err
	}
	l.idxRecs = n
	return l.rebuildTail(base, end, latest)
}

// findTrustedTail picks the last usable index record (n records kept;
// base is where the unindexed tail starts) and returns the end of the last
// complete transaction after it and that transaction's offset.
func (l *Log) findTrustedTail(size, n int64) (base chunkRec, keep, end int64, latest volt.Offset, err error) {
	for ; n > 0; n-- {
		rec, ok, err := l.readIdxRec(n - 1)
		if err != nil {
			return chunkRec{}, 0, 0, volt.Offset{}, err
		}
		if !ok || rec.end > size {
			continue // torn record, or data lost behind it: recompute it
		}
		end, latest, found, err := l.scanTxEnds(rec.end, size, rec.last, true)
		if err != nil || found {
			return rec, n, end, latest, err
		}
		if rec.txEnd {
			return rec, n, rec.end, rec.last, nil
		}
		// The chunk ends inside a transaction that never completed.
	}
	end, latest, _, err = l.scanTxEnds(0, size, volt.Offset{}, false)
	return chunkRec{}, 0, end, latest, err
}

// scanTxEnds scans valid records in [from, size) whose offsets keep
// increasing after prev, and returns the end and offset of the last one
// that completes a transaction.
func (l *Log) scanTxEnds(from, size int64, prev volt.Offset, hasPrev bool) (end int64, latest volt.Offset, found bool, err error) {
	end = from
	_, err = scanLive(l.live, from, size, func(pos, recLen int64, h liveHeader) bool {
		if h.off.LSN == 0 || h.off.Op == volt.OpInf || (hasPrev && !prev.Less(h.off)) {
			return false
		}
		prev, hasPrev = h.off, true
		if h.txEnd {
			end, latest, found = pos+recLen, h.off, true
		}
		return true
	})
	return end, latest, found, err
}

// rebuildTail runs the chunker over [base.end, end), records the chunks it
// seals in the index and publishes the recovered state.
func (l *Log) rebuildTail(base chunkRec, end int64, latest volt.Offset) error {
	ck := chunker{threshold: l.chunkBytes, start: base.end}
	var sealed []chunkRec
	if end > base.end {
		_, err := scanLive(l.live, base.end, end, func(pos, recLen int64, h liveHeader) bool {
			if rec, ok := ck.add(pos, recLen, h.n, h.off, h.txEnd); ok {
				sealed = append(sealed, rec)
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	if len(sealed) > 0 {
		if err := l.writeIdx(sealed); err != nil {
			return err
		}
	}
	hasLive := end > 0
	if !hasLive {
		latest = volt.SnapshotEnd
	}
	l.lw = liveWriter{size: end, ck: ck, latest: latest, hasLive: hasLive}
	last := base
	if len(sealed) > 0 {
		last = sealed[len(sealed)-1]
	}
	l.v.liveEnd, l.v.idxCount, l.v.lastSealed = end, l.idxRecs, last
	l.v.tailStart, l.v.tail = ck.start, ck.tail
	l.v.latest, l.v.hasLive = latest, hasLive
	return nil
}

// readIdxRec reads live index record i; ok is false if it is invalid.
func (l *Log) readIdxRec(i int64) (chunkRec, bool, error) {
	var b [liveIdxSize]byte
	if _, err := l.liveIdx.ReadAt(b[:], i*liveIdxSize); err != nil {
		return chunkRec{}, false, err
	}
	rec, ok := decodeLiveIdx(b[:])
	return rec, ok, nil
}

// scanLive reads the live records in [from, to) in order and calls fn for
// each one that is well framed and has a valid checksum, stopping at the
// first that is not, at to, or when fn returns false. It returns the end
// of the last record accepted by fn.
func scanLive(f *os.File, from, to int64, fn func(pos, recLen int64, h liveHeader) bool) (int64, error) {
	// The buffer is no larger than the range: a log reopened with a short
	// tail should not allocate 64 KiB to read it.
	r := bufio.NewReaderSize(io.NewSectionReader(f, from, to-from), int(min(64<<10, max(to-from, 16))))
	var hdr [liveHdrSize]byte
	var payload []byte
	pos := from
	for to-pos >= liveHdrSize {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return pos, ignoreEOF(err)
		}
		h, ok := parseLiveHeader(hdr[:])
		recLen := int64(liveHdrSize + h.n)
		if !ok || recLen > to-pos {
			return pos, nil
		}
		if cap(payload) < h.n {
			payload = make([]byte, h.n)
		}
		payload = payload[:h.n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return pos, ignoreEOF(err)
		}
		sum := crc32.Update(crc32.Checksum(hdr[4:], castagnoli), castagnoli, payload)
		if sum != le.Uint32(hdr[0:4]) || !fn(pos, recLen, h) {
			return pos, nil
		}
		pos += recLen
	}
	return pos, nil
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

func fileSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// truncateIfLonger cuts f (of the given size) to want bytes and fsyncs it,
// unless prev is an error, which it then returns.
func (l *Log) truncateIfLonger(f *os.File, size, want int64, prev error) error {
	if prev != nil || size <= want {
		return prev
	}
	if err := f.Truncate(want); err != nil {
		return err
	}
	return l.store.fsync(f)
}
