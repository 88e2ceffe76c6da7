package shape

import "github.com/voltsync/volt"

// SnapshotEnd renders the snapshot-end control message.
func SnapshotEnd(s volt.Snapshot) []byte {
	dst := s.AppendJSON([]byte(`{"headers":{"control":"` + volt.ControlSnapshotEnd + `",`))
	return append(dst, "}}"...)
}

// UpToDate renders the up-to-date control message.
func UpToDate(globalLastSeenLSN uint64) []byte {
	dst := []byte(`{"headers":{"control":"` + volt.ControlUpToDate + `","global_last_seen_lsn":`)
	dst = appendQuotedUint(dst, globalLastSeenLSN)
	return append(dst, "}}"...)
}

// MustRefetch is the body of a 409 response.
const MustRefetch = `[{"headers":{"control":"` + volt.ControlMustRefetch + `"}}]`

// SubsetMetadata renders a subset snapshot's metadata object.
func SubsetMetadata(s volt.Snapshot, mark int64, lsn uint64) []byte {
	dst := s.AppendJSON([]byte(`{`))
	dst = append(dst, `,"snapshot_mark":`...)
	dst = appendUint(dst, uint64(mark))
	dst = append(dst, `,"database_lsn":`...)
	dst = appendQuotedUint(dst, lsn)
	return append(dst, '}')
}
