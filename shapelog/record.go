package shapelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/voltsync/volt"
)

// Record layouts; see doc.go for the full description.
const (
	liveHdrSize  = 25 // crc32c(4) len(4) lsn(8) op(8) flags(1)
	snapHdrSize  = 9  // crc32c(4) len(4) flags(1)
	liveIdxSize  = 32 // end(8) lsn(8) op(8) flags(4) crc32c(4)
	snapIdxSize  = 16 // end(8) flags(4) crc32c(4)
	flagPresent  = 0x80
	flagTxEnd    = 0x01 // live record / live index: last entry of a transaction
	flagComplete = 0x01 // snapshot index: the snapshot is complete
	maxEntrySize = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports a record whose checksum or framing is invalid.
var ErrCorrupt = errors.New("shapelog: corrupt record")

var le = binary.LittleEndian

// appendLiveRecord appends the encoding of one live entry to buf.
func appendLiveRecord(buf []byte, off volt.Offset, json []byte, txEnd bool) []byte {
	start := len(buf)
	var hdr [liveHdrSize]byte
	le.PutUint32(hdr[4:8], uint32(len(json)))
	le.PutUint64(hdr[8:16], off.LSN)
	le.PutUint64(hdr[16:24], off.Op)
	hdr[24] = flagPresent
	if txEnd {
		hdr[24] |= flagTxEnd
	}
	buf = append(buf, hdr[:]...)
	buf = append(buf, json...)
	le.PutUint32(buf[start:], crc32.Checksum(buf[start+4:], castagnoli))
	return buf
}

// appendSnapRecord appends the encoding of one snapshot row to buf.
func appendSnapRecord(buf []byte, row []byte) []byte {
	start := len(buf)
	var hdr [snapHdrSize]byte
	le.PutUint32(hdr[4:8], uint32(len(row)))
	hdr[8] = flagPresent
	buf = append(buf, hdr[:]...)
	buf = append(buf, row...)
	le.PutUint32(buf[start:], crc32.Checksum(buf[start+4:], castagnoli))
	return buf
}

// liveHeader is the decoded fixed part of a live record.
type liveHeader struct {
	n     int // JSON length
	off   volt.Offset
	txEnd bool
}

// parseLiveHeader decodes h (liveHdrSize bytes) without checking the CRC.
func parseLiveHeader(h []byte) (liveHeader, bool) {
	n := le.Uint32(h[4:8])
	if h[24]&^flagTxEnd != flagPresent || n > maxEntrySize {
		return liveHeader{}, false
	}
	return liveHeader{
		n:     int(n),
		off:   volt.Offset{LSN: le.Uint64(h[8:16]), Op: le.Uint64(h[16:24])},
		txEnd: h[24]&flagTxEnd != 0,
	}, true
}

// crcOK checks the CRC stored in the first four bytes of rec.
func crcOK(rec []byte) bool {
	return le.Uint32(rec[0:4]) == crc32.Checksum(rec[4:], castagnoli)
}

// decodeLive calls fn for every record of buf, which must hold whole
// records only.
func decodeLive(buf []byte, fn func(h liveHeader, json []byte)) error {
	for pos := 0; pos < len(buf); {
		if len(buf)-pos < liveHdrSize {
			return fmt.Errorf("%w: short live header", ErrCorrupt)
		}
		h, ok := parseLiveHeader(buf[pos:])
		end := pos + liveHdrSize + h.n
		if !ok || end > len(buf) || !crcOK(buf[pos:end]) {
			return fmt.Errorf("%w: live record at +%d", ErrCorrupt, pos)
		}
		fn(h, buf[pos+liveHdrSize:end:end])
		pos = end
	}
	return nil
}

// decodeSnap returns the rows of buf, which must hold whole snapshot records.
func decodeSnap(buf []byte) ([][]byte, error) {
	var rows [][]byte
	for pos := 0; pos < len(buf); {
		if len(buf)-pos < snapHdrSize {
			return nil, fmt.Errorf("%w: short snapshot header", ErrCorrupt)
		}
		n := le.Uint32(buf[pos+4:])
		end := pos + snapHdrSize + int(n)
		if buf[pos+8] != flagPresent || n > maxEntrySize || end > len(buf) || !crcOK(buf[pos:end]) {
			return nil, fmt.Errorf("%w: snapshot record at +%d", ErrCorrupt, pos)
		}
		rows = append(rows, buf[pos+snapHdrSize:end:end])
		pos = end
	}
	return rows, nil
}

// chunkRec describes a sealed live chunk: it ends at file position end
// (exclusive) and its last entry has offset last.
type chunkRec struct {
	end   int64
	last  volt.Offset
	txEnd bool
}

func encodeLiveIdx(c chunkRec) []byte {
	b := make([]byte, liveIdxSize)
	le.PutUint64(b[0:8], uint64(c.end))
	le.PutUint64(b[8:16], c.last.LSN)
	le.PutUint64(b[16:24], c.last.Op)
	flags := uint32(flagPresent)
	if c.txEnd {
		flags |= flagTxEnd
	}
	le.PutUint32(b[24:28], flags)
	le.PutUint32(b[28:32], crc32.Checksum(b[:28], castagnoli))
	return b
}

func decodeLiveIdx(b []byte) (chunkRec, bool) {
	flags := le.Uint32(b[24:28])
	if le.Uint32(b[28:32]) != crc32.Checksum(b[:28], castagnoli) || flags&^flagTxEnd != flagPresent {
		return chunkRec{}, false
	}
	return chunkRec{
		end:   int64(le.Uint64(b[0:8])),
		last:  volt.Offset{LSN: le.Uint64(b[8:16]), Op: le.Uint64(b[16:24])},
		txEnd: flags&flagTxEnd != 0,
	}, true
}

func encodeSnapIdx(end int64, complete bool) []byte {
	b := make([]byte, snapIdxSize)
	le.PutUint64(b[0:8], uint64(end))
	flags := uint32(flagPresent)
	if complete {
		flags |= flagComplete
	}
	le.PutUint32(b[8:12], flags)
	le.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
	return b
}

// idxMagic starts the header of a snapshot index (the layout without a
// format file).
const idxMagic = "vsx2"

// encodeIdxHeader returns the snapshot index's header: the magic, the
// chunk threshold and a CRC.
func encodeIdxHeader(chunk int64) []byte {
	b := make([]byte, snapIdxSize)
	copy(b, idxMagic)
	le.PutUint64(b[4:12], uint64(chunk))
	le.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
	return b
}

// decodeIdxHeader returns the chunk threshold a header records.
func decodeIdxHeader(b []byte) (chunk int64, ok bool) {
	if string(b[:4]) != idxMagic || le.Uint32(b[12:16]) != crc32.Checksum(b[:12], castagnoli) {
		return 0, false
	}
	chunk = int64(le.Uint64(b[4:12]))
	return chunk, chunk > 0
}

// decodeSnapIdx returns the chunk end and the complete flag.
func decodeSnapIdx(b []byte) (end int64, complete, ok bool) {
	flags := le.Uint32(b[8:12])
	if le.Uint32(b[12:16]) != crc32.Checksum(b[:12], castagnoli) || flags&^flagComplete != flagPresent {
		return 0, false, false
	}
	return int64(le.Uint64(b[0:8])), flags&flagComplete != 0, true
}
