// Package mutations serves volt's write endpoint, POST /v1/mutations.
//
// A client sends its queue of transactions, numbered per client (client_id,
// seq). Each one is applied atomically, in one Postgres transaction together
// with a receipt row in volt.receipts, and exactly once: a seq already
// stored returns the stored result. Each transaction gets its own result:
// accepted (with the txid that the shape stream publishes), rejected (with
// a code, and the current row of a conflict), or retry for transient
// failures. A rejection does not stop the request; later transactions
// that touch the rejected rows are rejected as dependent.
//
// The wire types are in the root package (volt.MutationRequest,
// volt.MutationResult); docs/MUTATIONS.md is the contract.
//
// Before anything runs, the request must be JSON, within the caps, from a
// principal that owns its client_id, and alone for that client; each row
// mutation's table, operation and columns pass Options.Allow before any
// statement; row checks (Options.Check) lock and check a row before writing
// it.
//
// Files: handler.go (HTTP, options, caps, the per-client lock), decode.go
// (strict field names), apply.go (a request's life, one
// transaction's rejection or replay), batch.go (client transactions of
// one or many requests in one Postgres transaction, a savepoint each, one
// COMMIT: group commit), pipeline.go (statements in as few round trips as
// possible),
// receipts.go (volt.clients, volt.receipts, LSN), steps.go (validation,
// dependencies), rows.go and exec.go (row mutations as SQL), order.go
// (foreign-key order), catalog.go (cached table definitions and FK graph),
// values.go (JSON values as Postgres text), errors.go (classification),
// migrate.go (the volt schema).
package mutations
