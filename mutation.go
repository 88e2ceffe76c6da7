package volt

import "encoding/json"

// The write endpoint: POST /v1/mutations. A client sends its queue of
// transactions, each numbered by a per-client sequence number; the server
// applies each one atomically and exactly once and answers with one
// MutationResult per transaction, in order. docs/MUTATIONS.md has the
// contract.

// MutationsPath is the path of the write endpoint.
const MutationsPath = "/v1/mutations"

// Row operations of a Mutation. A named mutation has no Op.
const (
	OpInsert = "insert"
	OpUpdate = "update"
	OpDelete = "delete"
)

// MutationRequest is the body of POST /v1/mutations.
type MutationRequest struct {
	// ClientID names the client's queue; seqs are counted per client.
	ClientID     string              `json:"client_id"`
	Transactions []ClientTransaction `json:"transactions"`
	// Wait, when WaitLSN, asks the answer to wait for replication to report
	// each accepted transaction's exact commit LSN; empty answers at once.
	Wait string `json:"wait,omitempty"`
}

// WaitLSN is the MutationRequest.Wait that asks for exact commit LSNs.
const WaitLSN = "lsn"

// ClientTransaction is one client transaction: applied as a whole or not at all.
type ClientTransaction struct {
	// Seq is the transaction's number in the client's queue: 1, 2, 3, …
	Seq       int64      `json:"seq"`
	Mutations []Mutation `json:"mutations"`
}

// Mutation is a row operation (Op, Table, Key, Values, Original) or a call
// of a server-registered named mutation (Name, Args).
//
// Values are JSON values: strings, numbers, booleans and null are passed to
// Postgres as text and cast to the column's type; objects and arrays are
// JSON documents for json/jsonb columns, and arrays are Postgres arrays for
// array columns.
type Mutation struct {
	Op    string `json:"op,omitempty"`
	Table string `json:"table,omitempty"` // "todos" (schema public) or "schema.todos"
	// Key holds the primary key columns of the row to update or delete.
	Key map[string]any `json:"key,omitempty"`
	// Values holds the columns to insert, or to set in an update.
	Values map[string]any `json:"values,omitempty"`
	// Original holds the values the client last saw; checked tables reject
	// an update or delete whose row no longer has them.
	Original map[string]any `json:"original,omitempty"`

	Name string          `json:"name,omitempty"`
	Args json.RawMessage `json:"args,omitempty"`
}

// MutationResponse is the body of a 200 answer: one result per transaction,
// in request order.
type MutationResponse struct {
	Results []MutationResult `json:"results"`
}

// Statuses of a MutationResult.
const (
	// StatusAccepted: the transaction committed (now or by an earlier request).
	StatusAccepted = "accepted"
	// StatusRejected: the transaction will never be applied; Code says why.
	StatusRejected = "rejected"
	// StatusRetry: nothing was applied and nothing recorded; send the same
	// seq again later. Every later seq of the request is also StatusRetry.
	StatusRetry = "retry"
)

// Rejection codes of a MutationResult.
const (
	CodeInvalid    = "invalid"    // malformed mutation, unknown table or column, value of the wrong type
	CodeForbidden  = "forbidden"  // the authorisation check refused a row
	CodeConflict   = "conflict"   // the row is gone or no longer has the original values; Row holds it
	CodeConstraint = "constraint" // a unique, foreign key, check or not-null constraint; Constraint names it
	CodeDependent  = "dependent"  // touches a row that an earlier rejected transaction of the request touched
	// CodeOutOfOrder: the seq is neither stored nor the next one. Nothing is
	// recorded; send ExpectedSeq first.
	CodeOutOfOrder = "out_of_order"
	// CodeUnauthorized is the code of a 401 answer (the whole request).
	CodeUnauthorized = "unauthorized"
)

// MutationResult is the outcome of one ClientTransaction.
type MutationResult struct {
	Seq    int64  `json:"seq"`
	Status string `json:"status"`

	// Txid is the 32-bit xid of the Postgres transaction, as it appears in
	// the shape stream's txids header (TanStack DB's awaitTxId).
	Txid uint64 `json:"txid,omitempty"`
	// Xid8 is the 64-bit transaction id (epoch and xid), decimal.
	Xid8 string `json:"xid8,omitempty"`
	// LSN is the commit LSN, decimal (under volt serve, once replication
	// has delivered the transaction; otherwise a WAL position at or after
	// the commit); empty for replayed results. See docs/MUTATIONS.md.
	LSN string `json:"lsn,omitempty"`

	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	Constraint string `json:"constraint,omitempty"`
	// Row is the current server row of a conflict (JSON null when the row
	// does not exist); absent otherwise.
	Row json.RawMessage `json:"row,omitempty"`
	// ExpectedSeq is the seq the server expects next (CodeOutOfOrder).
	ExpectedSeq int64 `json:"expected_seq,omitempty"`
	// Replayed is true when the result was stored by an earlier request.
	Replayed bool `json:"replayed,omitempty"`
}

// MutationError is the body of a 4xx answer to POST /v1/mutations: the
// request as a whole was refused and nothing was applied.
type MutationError struct {
	Message string              `json:"message"`
	Code    string              `json:"code,omitempty"`
	Errors  map[string][]string `json:"errors,omitempty"`
}
