package shape

// SnapshotEnd renders the snapshot-end control message.
func SnapshotEnd(xmin, xmax uint64, xip []uint64) []byte {
	dst := appendSnapshotIdentity([]byte(`{"headers":{"control":"snapshot-end",`), xmin, xmax, xip)
	return append(dst, "}}"...)
}

// UpToDate renders the up-to-date control message.
func UpToDate(globalLastSeenLSN uint64) []byte {
	dst := []byte(`{"headers":{"control":"up-to-date","global_last_seen_lsn":`)
	dst = appendQuotedUint(dst, globalLastSeenLSN)
	return append(dst, "}}"...)
}

// MustRefetch is the body of a 409 response.
const MustRefetch = `[{"headers":{"control":"must-refetch"}}]`

// SubsetMetadata renders a subset snapshot's metadata object.
func SubsetMetadata(xmin, xmax uint64, xip []uint64, mark int64, lsn uint64) []byte {
	dst := appendSnapshotIdentity([]byte(`{`), xmin, xmax, xip)
	dst = append(dst, `,"snapshot_mark":`...)
	dst = appendUint(dst, uint64(mark))
	dst = append(dst, `,"database_lsn":`...)
	dst = appendQuotedUint(dst, lsn)
	return append(dst, '}')
}

// appendSnapshotIdentity appends "xmin":…,"xmax":…,"xip_list":[…] with
// every xid8 as a decimal string.
func appendSnapshotIdentity(dst []byte, xmin, xmax uint64, xip []uint64) []byte {
	dst = append(dst, `"xmin":`...)
	dst = appendQuotedUint(dst, xmin)
	dst = append(dst, `,"xmax":`...)
	dst = appendQuotedUint(dst, xmax)
	dst = append(dst, `,"xip_list":[`...)
	for i, x := range xip {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuotedUint(dst, x)
	}
	return append(dst, ']')
}
