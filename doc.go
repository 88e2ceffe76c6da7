// Package volt is the shared vocabulary of the volt sync server and its Go
// client: log offsets, shape handles, the wire messages of the Electric HTTP
// Shape API v1, and error codes. It imports only the standard library.
//
// # Offsets
//
// Every entry of a shape log has an Offset: the commit LSN of its
// transaction and the position of the operation inside it. The initial
// snapshot uses virtual offsets 0_0, 0_1, … (one per chunk) and 0_inf.
//
// # Messages
//
// A response body is a JSON array of messages. A change message has a key,
// a value and headers (operation, relation, lsn, op_position, txids, last);
// a control message has a "control" header (up-to-date, snapshot-end,
// must-refetch).
package volt
