// Package client is the Go client of volt: it follows shapes (the Electric
// HTTP Shape API v1, as served by volt and by ElectricSQL's sync service)
// and writes through volt's write endpoint (POST /v1/mutations).
//
// # Connecting
//
// New returns a Client of one server. It holds the base URL, the HTTP
// client, the credentials (WithToken, or WithTokenSource with a
// RefreshingToken that is refreshed once when the server answers 401),
// extra headers and the retry settings; every shape, stream and writer
// made from it shares them:
//
//	c, err := client.New("http://localhost:3000", client.WithToken(token))
//
// A proxy in front of the shape API that serves a shape at a path of its
// own is named per shape with the ShapeURL option.
//
// # Rows
//
// ShapeOf follows a shape (ShapeDef: a table, a where clause, columns) and
// keeps its rows decoded into a struct type, matching columns to fields by
// db tags as pgx's RowToStructByName does (see ScanRow):
//
//	type Todo struct {
//		ID    string `db:"id"`
//		Title string `db:"title"`
//		Done  bool   `db:"done"`
//	}
//	todos, err := client.ShapeOf[Todo](c, client.ShapeDef{Table: "todos"})
//	go todos.Run(ctx)
//	err = todos.WaitUpToDate(ctx)
//	for key, todo := range todos.All() { … }
//
// Client.Shape keeps the rows as maps (Row: column name to a typed value,
// see Column.Parse) for code that does not know the columns in advance;
// a TypedShape embeds that Shape, so both forms are at hand. Shape.All
// iterates over the rows without cloning them (read, do not modify); Rows
// and Get clone each row.
//
// # Live updates
//
// Run follows the shape until its context ends: the initial snapshot,
// then live updates by long polling (or Server-Sent Events, the LiveSSE
// option), resuming after a restart from a saved position (Resume). It
// retries network errors, 5xx and 429 answers with exponential backoff and
// full jitter, honouring Retry-After, and answers a 409 by starting again
// with the new handle (subscribers see ShapeChange.MustRefetch). Subscribe
// calls a function after every batch, in order. AwaitTxid waits until a
// Postgres transaction is visible in the shape.
//
// Client.Stream is the layer underneath: it delivers each batch of
// messages (*Change, *Move, *UpToDate, *SnapshotEnd, *MustRefetch) to a
// callback and keeps nothing, for callers that store rows themselves (the
// localstore package does).
//
// Shapes whose where clause has subqueries (x IN (SELECT …)) carry tags
// and active_conditions on every row, and move-in / move-out event
// messages (*Move) when a value enters or leaves a subquery's result.
// Shape (and so TypedShape) applies them as TanStack DB's Electric
// collection does, with a MoveTracker: a move-out sets the matched
// conditions of the rows whose tags hold the pattern false and deletes the
// rows it leaves in no disjunct of the where clause (the server sends no
// delete for them; subscribers see these deletes with Change.MovedOut
// set), a move-in sets them true, and the rows it brings follow as
// inserts, taken as upserts when the row is already there. The moves'
// txids count for AwaitTxid. A caller that follows a Stream itself
// applies them with its own MoveTracker.
//
// # Writes
//
// Client.Writer sends client transactions ([]volt.Mutation, with the row
// operations volt.OpInsert, volt.OpUpdate and volt.OpDelete) exactly once
// each, in order: each transaction gets a sequence number (SeqStore) that
// it keeps across retries, so the server applies it at most once.
// Writer.Write returns once the server has decided; Writer.WriteAndAwait
// (pattern 1, online writes) also waits until the write is visible in the
// shapes given.
//
// NewOptimistic (pattern 2, optimistic state) shows a transaction at once
// over a shape's rows, sends it with a Writer and keeps it on top until
// the server's copy arrives, rolling it back if the server rejects it.
//
// The client/localstore package (patterns 3 and 4) keeps shapes in a local
// SQLite database that the application reads and writes with SQL, and
// sends the local writes with a Writer.
//
// # Errors
//
// A rejected transaction is an error: Write, WriteAndAwait and
// Optimistic.Apply return its result together with a *RejectedError that
// holds the same result, so errors.As(err, &rej) gives the
// volt.MutationResult (rej.Result.Code says why) whichever was called.
// WriteBatch, which decides several transactions, returns rejections among
// its results.
//
// An answer that retrying cannot fix (a 4xx other than 409) is returned as
// *Error, with the status and the server's message (errors.Is
// ErrBadRequest, ErrUnauthorized). A row that does not decode into its
// struct stops Run with an error wrapping ErrTypeMismatch.
//
// Errors wrap their cause. WithOnError observes every failed attempt and
// the wait before the next (WithLogger logs them); when the caller's
// context ends while retrying, the returned *RetryError wraps both the
// context's error and the last attempt's, so errors.Is(err,
// syscall.ECONNREFUSED) tells that the server is down, not only that a
// deadline passed.
//
// The package logs nothing unless given a logger and starts no goroutine
// of its own: Run runs on the caller's goroutine and returns when its
// context is cancelled or on an error that retrying cannot fix.
package client
