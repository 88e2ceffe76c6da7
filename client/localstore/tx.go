package localstore

import (
	"database/sql"
	"errors"
	"regexp"
	"strings"
)

// Tx is a transaction of Update or View.
type Tx struct {
	tx       *sql.Tx
	db       *DB
	writable bool
	touched  map[string]bool // tables written, by base name
	after    []func()        // run after a successful commit
}

// errReadOnly is returned by Exec in a View.
var errReadOnly = errors.New("localstore: Exec in a read-only transaction (use Update)")

// Exec runs a statement. Writes to a synced table's view go to the
// overlay and the outbox; writes to <table>_synced fail.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	if !tx.writable {
		return nil, errReadOnly
	}
	tx.touch(writtenTables(query)...)
	return tx.exec(len(args) > 0, query, args...)
}

// maxStmts bounds the statements a DB keeps prepared.
const maxStmts = 256

// exec runs a statement of a write transaction; with reuse, through a
// statement the DB keeps prepared, so that SQLite parses it (and compiles
// the triggers it fires) once instead of on every call. Tx.Exec reuses
// statements with arguments: those are the ones an application repeats.
func (tx *Tx) exec(reuse bool, query string, args ...any) (sql.Result, error) {
	if reuse {
		if st := tx.db.stmt(query); st != nil {
			return tx.tx.Stmt(st).Exec(args...)
		}
	}
	return tx.tx.Exec(query, args...)
}

// stmt returns the DB's prepared statement for query, preparing it on
// first use; nil when it does not prepare outside the transaction (it
// names a table the transaction creates, say), which then runs query
// itself. The caller holds db.wmu.
func (db *DB) stmt(query string) *sql.Stmt {
	if st, ok := db.stmts[query]; ok {
		return st
	}
	st, err := db.sql.Prepare(query)
	if err != nil {
		return nil
	}
	if len(db.stmts) >= maxStmts {
		for q, old := range db.stmts {
			old.Close()
			delete(db.stmts, q)
		}
	}
	db.stmts[query] = st
	return st
}

// Query runs a query.
func (tx *Tx) Query(query string, args ...any) (*sql.Rows, error) {
	return tx.tx.Query(query, args...)
}

// QueryRow runs a query that returns at most one row.
func (tx *Tx) QueryRow(query string, args ...any) *sql.Row {
	return tx.tx.QueryRow(query, args...)
}

// touch records that tables (any of <t>, <t>_synced, <t>_local) changed.
func (tx *Tx) touch(tables ...string) {
	if tx.touched == nil {
		tx.touched = map[string]bool{}
	}
	for _, t := range tables {
		tx.touched[baseName(t)] = true
	}
}

// writeRE finds the target of INSERT, UPDATE, DELETE and REPLACE.
var writeRE = regexp.MustCompile(`(?i)\b(?:insert(?:\s+or\s+\w+)?\s+into|replace\s+into|update(?:\s+or\s+\w+)?|delete\s+from)\s+("(?:[^"]|"")+"|[\w.]+)`)

// writtenTables returns the tables a statement writes, as far as a
// regular expression can tell.
func writtenTables(query string) []string {
	var out []string
	for _, m := range writeRE.FindAllStringSubmatch(query, -1) {
		out = append(out, unquote(m[1]))
	}
	return out
}

func unquote(s string) string {
	if strings.HasPrefix(s, `"`) && strings.HasSuffix(s, `"`) && len(s) >= 2 {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s = s[i+1:]
	}
	return strings.ToLower(s)
}

// baseName maps <t>_synced and <t>_local to <t>: watchers of any of the
// three are told about changes to each.
func baseName(t string) string {
	t = strings.ToLower(t)
	if b, ok := strings.CutSuffix(t, "_synced"); ok {
		return b
	}
	if b, ok := strings.CutSuffix(t, "_local"); ok {
		return b
	}
	return t
}
