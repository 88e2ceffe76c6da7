// Package localstore keeps shapes in a local SQLite database and sends
// local writes back to volt through the database itself: Electric's
// "through-the-database sync" (write pattern 4), with the shared
// persistent optimistic state of pattern 3 underneath.
//
// For every table it syncs, the store keeps three objects:
//
//   - <table>_synced holds the server's rows, exactly as the shape
//     delivered them. Only the store writes it: triggers refuse the
//     application's writes.
//   - <table>_local is the overlay of local changes that the server has
//     not echoed yet: nullable copies of the columns, changed_columns (a
//     list such as ",title,done,"), is_deleted and write_id (the local
//     transaction that wrote it last).
//   - <table> is a view that puts the overlay over the synced rows,
//     column by column; a local delete hides the row. The application
//     reads it and writes it with plain INSERT, UPDATE and DELETE:
//     INSTEAD OF triggers write the overlay and append to the outbox
//     (_volt_outbox), in the same SQLite transaction.
//
// One DB.Update is one client transaction (a local transaction, ltx). The
// triggers learn its ltx from Update through a SQL function of the
// store's own driver, volt_ltx(), rather than from a row (so writing the
// views outside Update fails). The outbox is clustered by ltx, and a
// transaction gets its row in _volt_txns (seq, state) only when the
// Syncer takes it up, so a local write writes two b-trees: the overlay and
// the outbox.
//
// A Syncer sends the outbox to volt's write endpoint (POST /v1/mutations),
// in order and exactly once (each transaction keeps its seq across
// retries and restarts), and clears an overlay row only once its write
// was accepted and echoed back by the shape (by txid, or once the shape
// is up to date past the write's LSN). A rejected transaction, and the
// later local transactions that touched the same rows, are rolled back
// and reported to Options.OnRollback.
//
// DB.Sync stores each batch of a shape together with the shape's handle
// and offset (_volt_shapes), in one SQLite transaction, so a restart
// resumes exactly where it stopped.
//
// Sync and NewSyncer take the client.Client that knows the server (its
// URL, credentials and HTTP client, see client.New):
//
//	c, err := client.New("http://localhost:3000", client.WithToken(token))
//	go db.Sync(ctx, c, client.ShapeDef{Table: "todos"}, "todos")
//	s, err := db.NewSyncer(c, localstore.SyncerOptions{})
//	go s.Run(ctx)
//
// Durability: the store runs SQLite in WAL mode with synchronous=NORMAL.
// An Update that returned nil has been written to the WAL file, so it
// survives the application crashing or being killed. A commit does not
// wait for the disk, though: a power loss or an OS crash may lose the
// most recent Updates, back to the last checkpoint (whole Updates, never
// part of one, and the store stays consistent). The store checkpoints on
// a goroutine of its own, about every 16 MiB of WAL, so that Updates do
// not wait for the checkpoint's fsyncs. Options.Durable
// (synchronous=FULL) makes every commit wait for an fsync, so that it
// survives power loss too, at the cost of that fsync per local write.
//
// Only one process may open a store at a time: Open takes an OS file lock
// and fails with ErrLocked when another process holds it.
//
// The store's own tables have a version (_volt_meta 'schema'). Open
// upgrades a store written by an older version in place, in one
// transaction, keeping its outbox, transactions and overlay; an older
// version of this package cannot write a store after that.
package localstore
