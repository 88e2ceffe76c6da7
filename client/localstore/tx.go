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
	return tx.tx.Exec(query, args...)
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
