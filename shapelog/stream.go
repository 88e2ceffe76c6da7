package shapelog

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/voltsync/volt"
)

// Page is what Read would return, located but not read: the caller streams
// its entries with Each instead of holding a whole chunk (up to the chunk
// threshold, 10 MiB by default) in memory per response. A Page reads the
// log's files, so it is valid only while the Log is open.
type Page struct {
	// End and AtHead are Read's.
	End    volt.Offset
	AtHead bool
	// Bytes is the size of the page's records on disk: an upper bound of
	// the entries' total size.
	Bytes int64
	// Partial marks a page of LocateWritten that ends before its chunk
	// does: the chunk goes on at Resume() once more of it is written.
	Partial bool

	f          *os.File
	live       bool
	start, end int64
	after      volt.Offset
}

// Locate returns the page Read(after) would return, without reading its
// entries. It fails like Read (ErrSnapshotPending, ErrClosed).
func (l *Log) Locate(after volt.Offset) (Page, error) {
	v := l.load()
	if v.closed {
		return Page{}, ErrClosed
	}
	switch {
	case after.IsBeforeAll():
		return l.locateSnap(&v, 0)
	case after.InSnapshot() && after.Op != volt.OpInf:
		if after.Op+1 < uint64(v.snapChunks) {
			return l.locateSnap(&v, int64(after.Op+1))
		}
		if !v.snapComplete {
			return Page{}, ErrSnapshotPending
		}
		return l.locateLive(&v, volt.SnapshotEnd)
	default:
		return l.locateLive(&v, after)
	}
}

// LocateWritten is Locate for a snapshot chunk (after is -1 or 0_k with k
// not inf) that may still be being written. It returns the chunk's
// records from file position from on (0: from its start): up to its end
// when it is sealed, or, when it is the open chunk of an unfinished
// snapshot, those written so far, marked Partial (possibly none: wait
// for OnChange's callback and call again with from = Resume()). A
// client that concatenates the pages of one chunk gets exactly the
// chunk Locate returns once it is sealed; if the snapshot is never
// finished (its shape is removed, the process dies) the chunk never
// ends, so no partial chunk can pass for a whole one. Later chunks give
// ErrSnapshotPending, like Locate.
func (l *Log) LocateWritten(after volt.Offset, from int64) (Page, error) {
	v := l.load()
	if v.closed {
		return Page{}, ErrClosed
	}
	var k int64
	switch {
	case after.IsBeforeAll():
	case after.InSnapshot() && after.Op != volt.OpInf:
		k = int64(after.Op + 1)
	default:
		return Page{}, fmt.Errorf("shapelog: LocateWritten(%v): not a snapshot chunk", after)
	}
	if k < v.snapChunks {
		p, err := l.locateSnap(&v, k)
		if err == nil && from > p.start {
			p.start, p.Bytes = from, p.end-from
		}
		return p, err
	}
	if k > v.snapChunks || v.snapComplete {
		return Page{}, ErrSnapshotPending
	}
	snap, _, err := l.snapReader()
	if err != nil {
		return Page{}, err
	}
	start := max(v.snapOpen, from)
	end := max(v.snapWritten, start)
	return Page{End: volt.Offset{LSN: 0, Op: uint64(k)}, Bytes: end - start, Partial: true, f: snap, start: start, end: end}, nil
}

// Resume is the file position after the page: where the next
// LocateWritten of the same chunk starts.
func (p Page) Resume() int64 { return p.end }

func (l *Log) locateSnap(v *view, k int64) (Page, error) {
	if k >= v.snapChunks {
		return Page{}, ErrSnapshotPending
	}
	snap, start, end, err := l.snapChunkRange(k)
	if err != nil {
		return Page{}, err
	}
	return Page{End: volt.Offset{LSN: 0, Op: uint64(k)}, Bytes: end - start, f: snap, start: start, end: end}, nil
}

func (l *Log) locateLive(v *view, after volt.Offset) (Page, error) {
	if !after.Less(v.latest) {
		return Page{End: after, AtHead: true}, nil
	}
	start, end, last, err := l.locate(v, after)
	if err != nil {
		return Page{}, err
	}
	return Page{End: last, AtHead: !last.Less(v.latest), Bytes: end - start, f: l.live, live: true, start: start, end: end, after: after}, nil
}

// Read returns the page's entries in memory, as Log.Read does: one read
// of the page's bytes into a buffer the entries then share.
func (p Page) Read() (ReadResult, error) {
	res := ReadResult{End: p.End, AtHead: p.AtHead}
	if p.f == nil {
		return res, nil // at the head: nothing to read
	}
	buf := make([]byte, p.end-p.start)
	if _, err := p.f.ReadAt(buf, p.start); err != nil && !(err == io.EOF && len(buf) == 0) {
		if errors.Is(err, os.ErrClosed) {
			err = ErrClosed
		}
		return ReadResult{}, err
	}
	if !p.live {
		rows, err := decodeSnap(buf)
		if err != nil {
			return ReadResult{}, err
		}
		res.Entries = rows
		return res, nil
	}
	err := decodeLive(buf, func(h liveHeader, json []byte) {
		if p.after.Less(h.off) {
			res.Entries = append(res.Entries, json)
			res.End = h.off
		}
	})
	if err != nil {
		return ReadResult{}, err
	}
	if len(res.Entries) == 0 {
		return ReadResult{}, fmt.Errorf("%w: no live entry after %v in [%d,%d)", ErrCorrupt, p.after, p.start, p.end)
	}
	return res, nil
}

// snapChunkRange returns the snapshot file and the range in it of sealed
// snapshot chunk k.
func (l *Log) snapChunkRange(k int64) (snap *os.File, start, end int64, err error) {
	snap, idx, err := l.snapReader()
	if err != nil {
		return nil, 0, 0, err
	}
	var b [2 * snapIdxSize]byte
	recs, at := b[:snapIdxSize], l.idxBase+k*snapIdxSize
	if k > 0 {
		recs, at = b[:], l.idxBase+(k-1)*snapIdxSize
	}
	if _, err := idx.ReadAt(recs, at); err != nil {
		return nil, 0, 0, err
	}
	if k > 0 {
		s, _, ok := decodeSnapIdx(recs[:snapIdxSize])
		if !ok {
			return nil, 0, 0, fmt.Errorf("%w: snapshot index record %d", ErrCorrupt, k-1)
		}
		start = s
	}
	end, _, ok := decodeSnapIdx(recs[len(recs)-snapIdxSize:])
	if !ok || end < start {
		return nil, 0, 0, fmt.Errorf("%w: snapshot index record %d", ErrCorrupt, k)
	}
	return snap, start, end, nil
}

// Each calls fn with each entry of the page in order, reading the file
// through buf (records larger than buf are read on their own). The slice
// passed to fn is valid only during the call.
func (p Page) Each(buf []byte, fn func(json []byte) error) error {
	if p.f == nil {
		return nil
	}
	hdrSize := snapHdrSize
	if p.live {
		hdrSize = liveHdrSize
	}
	if len(buf) < hdrSize {
		buf = make([]byte, 64<<10)
	}
	pos := p.start // file position of buf[lo]
	lo, hi := 0, 0 // buf[lo:hi] holds file bytes [pos, pos+hi-lo)
	fill := func(need int) error {
		// Make buf[lo:hi] hold at least need bytes (need <= len(buf)).
		if hi-lo >= need {
			return nil
		}
		copy(buf, buf[lo:hi])
		hi -= lo
		lo = 0
		want := min(int64(len(buf)-hi), p.end-(pos+int64(hi)))
		if want < int64(need-hi) {
			return fmt.Errorf("%w: record runs past its chunk", ErrCorrupt)
		}
		n, err := p.f.ReadAt(buf[hi:hi+int(want)], pos+int64(hi))
		hi += n
		if err != nil && !(errors.Is(err, io.EOF) && hi >= need) {
			if errors.Is(err, os.ErrClosed) {
				return ErrClosed
			}
			return err
		}
		return nil
	}
	for pos < p.end {
		if err := fill(hdrSize); err != nil {
			return err
		}
		var n int
		var o volt.Offset
		if p.live {
			h, ok := parseLiveHeader(buf[lo:])
			if !ok {
				return fmt.Errorf("%w: live record at %d", ErrCorrupt, pos)
			}
			n, o = h.n, h.off
		} else {
			if buf[lo+8] != flagPresent {
				return fmt.Errorf("%w: snapshot record at %d", ErrCorrupt, pos)
			}
			n = int(le.Uint32(buf[lo+4:]))
		}
		size := hdrSize + n
		var rec []byte
		if size <= len(buf) {
			if err := fill(size); err != nil {
				return err
			}
			rec = buf[lo : lo+size]
			lo += size
		} else {
			rec = make([]byte, size)
			if _, err := p.f.ReadAt(rec, pos); err != nil {
				return err
			}
			lo, hi = 0, 0
		}
		if !crcOK(rec) {
			return fmt.Errorf("%w: record at %d", ErrCorrupt, pos)
		}
		pos += int64(size)
		if p.live && !p.after.Less(o) {
			continue // before the requested offset, in the same chunk
		}
		if err := fn(rec[hdrSize:]); err != nil {
			return err
		}
	}
	return nil
}
