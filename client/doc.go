// Package client is the Go client of the Electric HTTP Shape API v1, as
// served by volt and by ElectricSQL's sync service.
//
// It comes in two layers, each usable alone:
//
//   - Stream follows one shape: the initial snapshot from offset -1 (or a
//     saved handle and offset), then live updates by long polling or
//     Server-Sent Events. It retries transient failures with exponential
//     backoff and full jitter, honouring Retry-After, answers a 409 by
//     starting again at -1 with the new handle, and delivers what it reads
//     to a callback, batch by batch and in order, with values typed from the
//     electric-schema header (see Column.Parse).
//   - Shape runs a Stream and keeps the shape's current rows in memory. It
//     tells subscribers about every batch and lets writers wait until their
//     write is visible: AwaitTxid for a Postgres transaction id and
//     AwaitReceipt for a receipt of volt's write endpoint.
//
// Shapes whose where clause has subqueries (x IN (SELECT …)) carry tags
// and active_conditions on every row, and move-in / move-out event
// messages (*Move) when a value enters or leaves a subquery's result.
// Shape applies them as TanStack DB's Electric collection does, with a
// MoveTracker: a move-out sets the matched conditions of the rows whose
// tags hold the pattern false and deletes the rows it leaves in no
// disjunct of the where clause (the server sends no delete for them;
// subscribers see these deletes with Change.MovedOut set), a move-in sets
// them true, and the rows it brings follow as inserts, taken as upserts
// when the row is already there. The moves' txids count for AwaitTxid.
// Stream only decodes the messages; a caller that follows a Stream
// itself applies them with its own MoveTracker.
//
// The package logs nothing and starts no goroutine of its own: Stream.Run
// and Shape.Run run on the caller's goroutine and return when their context
// is cancelled or on an error that retrying cannot fix (a 4xx answer other
// than 409 is returned as *Error).
//
// Errors wrap their cause. The OnError option of ShapeOptions and
// WriterOptions observes every failed attempt and the wait before the
// next; when the caller's context ends while retrying, the returned
// *RetryError wraps both the context's error and the last attempt's, so
// errors.Is(err, syscall.ECONNREFUSED) tells that the server is down.
package client
