package volt

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// OpInf is the op component of an offset that sorts after every operation
// of its transaction ("<lsn>_inf").
const OpInf = math.MaxUint64

// Offset is a position in a shape log: the commit LSN of a transaction and
// the index of an operation inside it. The zero LSN is the snapshot phase,
// whose op is the chunk number. BeforeAll ("-1") sorts before every offset.
type Offset struct {
	LSN uint64
	Op  uint64
	// before marks the "-1" offset.
	before bool
}

var (
	// BeforeAll is the "-1" offset: the start of a shape log.
	BeforeAll = Offset{before: true}
	// SnapshotEnd is "0_inf": after the snapshot, before any transaction.
	SnapshotEnd = Offset{LSN: 0, Op: OpInf}
)

// ErrInvalidOffset is returned by ParseOffset for text that is not an offset.
var ErrInvalidOffset = errors.New("has invalid format")

// ParseOffset parses "-1" or "<lsn>_<op>" where op is a decimal or "inf".
// ("now" is a request parameter, not an offset, and is handled by callers.)
func ParseOffset(s string) (Offset, error) {
	if s == "-1" {
		return BeforeAll, nil
	}
	tx, op, ok := strings.Cut(s, "_")
	if !ok || !isDigits(tx) || (op != "inf" && !isDigits(op)) {
		return Offset{}, ErrInvalidOffset
	}
	lsn, err := strconv.ParseUint(tx, 10, 64)
	if err != nil {
		return Offset{}, ErrInvalidOffset
	}
	o := Offset{LSN: lsn, Op: OpInf}
	if op != "inf" {
		if o.Op, err = strconv.ParseUint(op, 10, 64); err != nil || o.Op == OpInf {
			return Offset{}, ErrInvalidOffset
		}
	}
	return o, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the wire form of o.
func (o Offset) String() string {
	if o.before {
		return "-1"
	}
	op := "inf"
	if o.Op != OpInf {
		op = strconv.FormatUint(o.Op, 10)
	}
	return strconv.FormatUint(o.LSN, 10) + "_" + op
}

// IsBeforeAll reports whether o is the "-1" offset.
func (o Offset) IsBeforeAll() bool { return o.before }

// InSnapshot reports whether o lies in the snapshot phase (0_k or 0_inf).
func (o Offset) InSnapshot() bool { return !o.before && o.LSN == 0 }

// Compare returns -1, 0 or +1 as o sorts before, with or after p.
func (o Offset) Compare(p Offset) int {
	switch {
	case o.before && p.before:
		return 0
	case o.before:
		return -1
	case p.before:
		return 1
	case o.LSN != p.LSN:
		return cmpUint(o.LSN, p.LSN)
	default:
		return cmpUint(o.Op, p.Op)
	}
}

// Less reports whether o sorts before p.
func (o Offset) Less(p Offset) bool { return o.Compare(p) < 0 }

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
