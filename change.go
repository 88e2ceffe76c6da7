package volt

import "time"

// ChangeKind is the kind of a replicated change, as the replication
// stream reports it. Its String is the operation's name in the protocol
// ("insert", "update", "delete": OpInsert, OpUpdate, OpDelete) or
// "truncate".
type ChangeKind uint8

// Kinds of a Change.
const (
	ChangeInsert ChangeKind = iota + 1
	ChangeUpdate
	ChangeDelete
	ChangeTruncate
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeInsert:
		return "insert"
	case ChangeUpdate:
		return "update"
	case ChangeDelete:
		return "delete"
	case ChangeTruncate:
		return "truncate"
	}
	return "unknown"
}

// Transaction is one committed Postgres transaction as read from the
// replication stream.
type Transaction struct {
	// Xid is the 32-bit transaction id (pgoutput BEGIN); it is what the
	// shape stream publishes in the txids header.
	Xid uint32
	// CommitLSN is the LSN of the commit record (BEGIN's final_lsn); shape
	// log offsets of this transaction's changes use it.
	CommitLSN uint64
	// EndLSN is the end of the commit record; acknowledging it to the
	// replication slot releases the transaction.
	EndLSN     uint64
	CommitTime time.Time
	Changes    []Change
}

// Change is one row change (or a truncate of one or more relations).
type Change struct {
	Kind     ChangeKind
	Relation *Relation
	// Old is the previous row for updates and deletes (REPLICA IDENTITY FULL
	// makes it complete); nil for inserts.
	Old []Value
	// New is the new row for inserts and updates; nil for deletes. Unchanged
	// TOASTed values are already filled in from Old.
	New []Value
	// Truncated lists every relation of a TRUNCATE (Kind == ChangeTruncate).
	Truncated []*Relation
}

// Value is one column's value in Postgres text output form.
type Value struct {
	Text string
	Null bool
}

// Relation describes a table as the replication stream announced it.
type Relation struct {
	ID      uint32 // table OID
	Schema  string
	Name    string
	Columns []RelationColumn
}

// RelationColumn is a column of a Relation.
type RelationColumn struct {
	Name    string
	TypeOID uint32
	TypeMod int32
	// Key marks a column of the replica identity (all columns with FULL).
	Key bool
}

// ColumnIndex returns the position of the named column, or -1.
func (r *Relation) ColumnIndex(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}
