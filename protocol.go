package volt

import (
	"fmt"
	"strconv"
)

// The read-path contract of the Electric HTTP Shape API v1, shared by the
// server (httpapi, shape), the Go client and the benchmark's clients.

// Response headers of GET /v1/shape.
const (
	// HeaderHandle names the shape a response belongs to (on a 409: the
	// handle to use next).
	HeaderHandle = "electric-handle"
	// HeaderOffset is the offset to request next.
	HeaderOffset = "electric-offset"
	// HeaderSchema is the JSON schema of the shape's columns (non-live
	// responses).
	HeaderSchema = "electric-schema"
	// HeaderCursor is the long-poll cache buster of live responses.
	HeaderCursor = "electric-cursor"
	// HeaderUpToDate (empty value) marks a response that ends at the head
	// of the log.
	HeaderUpToDate = "electric-up-to-date"
	// HeaderHasData is "false" for responses without changes.
	HeaderHasData = "electric-has-data"
	// HeaderSnapshot is "true" on subset snapshot responses.
	HeaderSnapshot = "electric-snapshot"
	// HeaderServer names the server.
	HeaderServer = "electric-server"
	// HeaderKnownError is "true" on errors Electric flags as known.
	HeaderKnownError = "electric-internal-known-error"
)

// Query parameters of /v1/shape.
const (
	ParamTable            = "table"
	ParamWhere            = "where"
	ParamParams           = "params" // params[1]=…, params[2]=…
	ParamColumns          = "columns"
	ParamQueryableColumns = "queryable_columns"
	ParamReplica          = "replica"
	ParamLog              = "log"
	ParamOffset           = "offset"
	ParamHandle           = "handle"
	// ParamExpiredHandle is the handle a client left after a 409.
	ParamExpiredHandle = "expired_handle"
	ParamLive          = "live"
	ParamCursor        = "cursor"
	ParamLiveSSE       = "live_sse"
	// ParamExperimentalLiveSSE is live_sse's older name.
	ParamExperimentalLiveSSE = "experimental_live_sse"
	ParamSecret              = "secret"
	// ParamAPISecret is secret's older name.
	ParamAPISecret = "api_secret"
)

// Values of a control message's "control" header.
const (
	ControlUpToDate    = "up-to-date"
	ControlSnapshotEnd = "snapshot-end"
	ControlMustRefetch = "must-refetch"
)

// Snapshot identifies a Postgres MVCC snapshot as pg_current_snapshot()
// reports it: every transaction with an xid below Xmin had ended, none at
// or above Xmax had started, and those in Xip were in progress. A shape's
// snapshot-end message and a subset's metadata carry it.
type Snapshot struct {
	Xmin, Xmax uint64   // xid8 bounds
	Xip        []uint64 // xid8s in progress
}

// Visible reports whether the transaction with 32-bit id xid, which has
// committed by now, is visible in the snapshot (Postgres semantics: xid <
// Xmin, or xid < Xmax and not in Xip). Its 64-bit id is rebuilt relative
// to Xmax (Xid8).
func (s Snapshot) Visible(xid uint32) bool {
	x := Xid8(xid, s.Xmax)
	if x < s.Xmin {
		return true
	}
	if x >= s.Xmax {
		return false
	}
	for _, p := range s.Xip {
		if p == x {
			return false
		}
	}
	return true
}

// Xid8 rebuilds the 64-bit transaction id of a 32-bit xid from a 64-bit
// reference xid (a snapshot's xmax): the xid8 nearest to ref with those low
// 32 bits. Postgres keeps every live xid within 2³¹ of the current one,
// so this is exact across wraparound of the 32-bit counter.
func Xid8(xid uint32, ref uint64) uint64 {
	x := int64(ref) + int64(int32(xid-uint32(ref)))
	if x < 0 { // before the first epoch: it can only be a future xid
		x += 1 << 32
	}
	return uint64(x)
}

// AppendJSON appends the snapshot's fields as messages carry them,
// `"xmin":"…","xmax":"…","xip_list":["…",…]` (every xid8 a decimal string),
// without braces.
func (s Snapshot) AppendJSON(dst []byte) []byte {
	dst = append(dst, `"xmin":"`...)
	dst = strconv.AppendUint(dst, s.Xmin, 10)
	dst = append(dst, `","xmax":"`...)
	dst = strconv.AppendUint(dst, s.Xmax, 10)
	dst = append(dst, `","xip_list":[`...)
	for i, x := range s.Xip {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = strconv.AppendUint(dst, x, 10)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// ParseSnapshot reads the decimal strings of a message's xmin, xmax and
// xip_list fields; an error names the field that is not an xid8.
func ParseSnapshot(xmin, xmax string, xip []string) (Snapshot, error) {
	var s Snapshot
	var err error
	if s.Xmin, err = strconv.ParseUint(xmin, 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("xmin %q", xmin)
	}
	if s.Xmax, err = strconv.ParseUint(xmax, 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("xmax %q", xmax)
	}
	for _, v := range xip {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Snapshot{}, fmt.Errorf("xip %q", v)
		}
		s.Xip = append(s.Xip, x)
	}
	return s, nil
}
