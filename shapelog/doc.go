// Package shapelog stores shape logs on disk: for each shape, the initial
// snapshot (virtual offsets 0_0, 0_1, … one per chunk) followed by live
// entries (real offsets <commitLSN>_<op>), each an opaque encoded JSON
// message. A Store is a directory with one subdirectory per shape handle;
// a Log is one of them, written by (at most) one snapshot writer and one
// live writer and read concurrently by any number of HTTP handlers. Reads
// page the log exactly like Electric (see Log.Read and protocol.md §6.5).
//
// # Directory layout
//
//	<store>/<handle>/snapshot.dat  snapshot rows (snapshot records)
//	<store>/<handle>/snapshot.idx  a 16-byte header (the chunk threshold), then one 16-byte record per sealed snapshot chunk
//	<store>/<handle>/live.dat      live entries (live records); created by the first Append
//	<store>/<handle>/live.idx      one 32-byte record per durable sealed live chunk; created with live.dat
//	<store>/.<handle>.creating     a Create in progress (removed by OpenStore)
//	<store>/.<handle>.deleting-*   a Delete in progress (removed by OpenStore)
//
// A log without live files has no live entries (a shape that never
// changed costs two inodes and two open files fewer); the first Sync after
// they are created also syncs the directory. A new log is three inodes
// (the directory and the snapshot files): creating many shapes at once is
// mostly inode allocation. Logs of the first layout also have
//
//	<store>/<handle>/format        "volt-shapelog 1\nchunk_bytes N\n"
//
// and no header in snapshot.idx; Open tells them apart by the format file.
//
// The chunk threshold is fixed per log at Create (snapshot.idx header) so
// chunk boundaries never change. A header torn by a crash was never
// synced, so neither was the snapshot it starts: Open discards the
// snapshot and writes the header again with the store's threshold. All integers are little-endian; every CRC is
// CRC-32C (Castagnoli). Flag bytes/words always have bit 0x80 set, so
// zero-filled regions never parse as records.
//
// # Snapshot records (snapshot.dat)
//
//	crc32c  uint32   over everything after this field (header rest + row)
//	len     uint32   row length
//	flags   uint8    0x80
//	row     [len]byte
//
// A chunk is a contiguous run of records. The running chunk size grows by
// len+1 per row; when it reaches the threshold the chunk is sealed after
// that row. FinishSnapshot appends the snapshot-end message to the open
// chunk and seals it as the last one.
//
// # Snapshot index (snapshot.idx)
//
//	magic   [4]byte  "vsx2"                     header, once
//	chunk   uint64   chunk threshold in bytes
//	crc32c  uint32   over magic and chunk
//
// then one record per sealed chunk:
//
//	end     uint64   end of chunk k in snapshot.dat (chunk k starts at end of k-1, or 0)
//	flags   uint32   0x80 | 0x01 on the last chunk when the snapshot is complete
//	crc32c  uint32   over end and flags
//
// Record k is written when chunk k is sealed. The final record (with the
// complete flag) is written only after snapshot.dat and the earlier
// records have been fsynced, and is fsynced itself before FinishSnapshot
// returns. On Open the snapshot is complete iff the last index record is
// valid and carries the flag; otherwise both snapshot files are truncated
// to zero (a snapshot query cannot be resumed).
//
// # Live records (live.dat)
//
//	crc32c  uint32   over everything after this field (header rest + JSON)
//	len     uint32   JSON length
//	lsn     uint64   offset: commit LSN
//	op      uint64   offset: op index
//	flags   uint8    0x80 | 0x01 on the last entry of an Append call (a transaction end)
//	json    [len]byte
//
// Live chunks: the JSON bytes since the chunk start are summed; when the
// sum reaches the threshold the chunk ends after that entry (possibly in
// the middle of a transaction).
//
// # Live chunk index (live.idx)
//
//	end     uint64   end of the chunk in live.dat (start = end of previous, or 0)
//	lsn     uint64   offset of the chunk's last entry
//	op      uint64
//	flags   uint32   0x80 | 0x01 if the chunk ends at a transaction end
//	crc32c  uint32   over the 28 bytes before it
//
// Index records are written by Sync only after live.dat has been fsynced,
// so a durable record never points at data that is not durable. Readers
// see chunks sealed since the last Sync from memory.
//
// # Recovery (Store.Open)
//
// Open reads the last live index record (dropping torn or invalid trailing
// records and records pointing past the end of live.dat), then scans
// live.dat from the end of that chunk: records must be well framed, pass
// their CRC and have strictly increasing real offsets. live.dat is
// truncated after the last record that ends a transaction, so a log never
// holds half a transaction, and the boundaries of the scanned tail are
// recomputed and appended to the index. After a clean Close the scan
// covers only the open chunk; after a crash it covers at most the data
// appended since the last completed Sync (plus the open chunk). Memory per
// log is constant plus a sparse index of the open chunk (one point per
// 16 KiB).
//
// # Creating and opening
//
// Create builds the directory under a temporary name, creates the snapshot
// files and renames it into place, without fsyncs; SyncDir and SyncRoot make it
// durable later, in batches (volt's shape cache trusts a log only once it
// is in its catalog, written after those). With Options.DeferSnapshotSync
// FinishSnapshot also leaves its fsyncs to SyncSnapshot (or Close). Open of
// a log whose snapshot is complete keeps only the live files open; the
// snapshot files are opened when a reader needs them.
//
// # Reading
//
// Readers copy the published state under a mutex and then use ReadAt on
// byte ranges that the writers never modify again; entries become visible
// when Append returns. Read returns a page's entries in memory; Locate
// returns where they are, for Page.Each to stream them through a small
// buffer. LocateWritten also returns the rows of the open snapshot chunk
// that are written to snapshot.dat (in batches of 64 KiB) before the
// chunk is sealed, marked Partial: a reader carries on at Resume until
// the chunk is sealed, so what it gets in the end is the sealed chunk,
// and it never takes a part of an unfinished snapshot for a whole chunk
// (after a crash that part is truncated away on Open). OnChange registers a callback for every change (new snapshot
// chunk, snapshot end, new live entries), for long polling.
package shapelog
