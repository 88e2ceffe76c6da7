package shapelog

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/voltsync/volt"
)

// ErrSnapshotPending is returned by Read when the requested snapshot chunk
// is not sealed yet; wait for OnChange's callback and retry.
var ErrSnapshotPending = errors.New("shapelog: snapshot chunk not ready")

// ReadResult is the answer to one Read.
type ReadResult struct {
	// Entries are the JSON messages, in order. They share one freshly
	// allocated buffer and may be kept.
	Entries [][]byte
	// End is the offset the client must send next (electric-offset).
	End volt.Offset
	// AtHead reports End >= Latest() at the time of the read: there was
	// nothing more to read.
	AtHead bool
}

// Read returns the entries after offset after, paged as Electric does:
//
//   - -1: snapshot chunk 0, End 0_0.
//   - 0_k with k+1 sealed chunks or more: chunk k+1, End 0_(k+1).
//   - 0_k for the last chunk of a complete snapshot, or 0_inf: the live
//     entries of the first live chunk; End is the last one's offset, or
//     Latest() (0_inf) when there are none.
//   - a real offset: the live entries after it up to the end of the chunk
//     holding the first of them; End is the last one's offset. If after >=
//     Latest() there are none and End = after.
//
// A snapshot chunk that is not sealed yet yields ErrSnapshotPending. 0_inf
// and real offsets read the live log even while the snapshot is still
// being written.
func (l *Log) Read(after volt.Offset) (ReadResult, error) {
	p, err := l.Locate(after)
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = ErrClosed // closed between the view's load and a file read
		}
		return ReadResult{}, err
	}
	return p.Read()
}

// locate returns the file range to read for entries after `after` and the
// offset of the last entry in it: the sealed chunk whose last entry is the
// first one past after, or the open chunk (starting at the nearest sparse
// index point), which ends with the log's latest entry.
func (l *Log) locate(v *view, after volt.Offset) (start, end int64, last volt.Offset, err error) {
	if n := v.sealedCount(); n > 0 && after.Less(v.lastSealed.last) {
		i, err := l.searchChunks(v, n, after)
		if err != nil {
			return 0, 0, last, err
		}
		c, err := l.chunkAt(v, i)
		if err != nil || i == 0 {
			return 0, c.end, c.last, err
		}
		prev, err := l.chunkAt(v, i-1)
		return prev.end, c.end, c.last, err
	}
	start = v.tailStart
	j := sort.Search(len(v.tail), func(j int) bool { return after.Less(v.tail[j].off) })
	if j > 0 {
		start = v.tail[j-1].pos
	}
	return start, v.liveEnd, v.latest, nil
}

// searchChunks returns the first of the n sealed chunks whose last offset
// is after `after`.
func (l *Log) searchChunks(v *view, n int64, after volt.Offset) (int64, error) {
	lo, hi := int64(0), n-1 // the answer is in [lo, hi]; chunk n-1 qualifies
	for lo < hi {
		mid := lo + (hi-lo)/2
		c, err := l.chunkAt(v, mid)
		if err != nil {
			return 0, err
		}
		if after.Less(c.last) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// chunkAt returns sealed live chunk i, from the index file or from the
// chunks sealed since the last Sync.
func (l *Log) chunkAt(v *view, i int64) (chunkRec, error) {
	if i >= v.idxCount {
		return v.pending[i-v.idxCount], nil
	}
	rec, ok, err := l.readIdxRec(i)
	if err != nil {
		return chunkRec{}, err
	}
	if !ok {
		return chunkRec{}, fmt.Errorf("%w: chunk index record %d", ErrCorrupt, i)
	}
	return rec, nil
}
