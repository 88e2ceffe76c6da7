package localstore

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"strings"
)

// Tx is a transaction of Update or View.
type Tx struct {
	tx       conn
	db       *DB
	writable bool
	done     bool            // Update returned: the Tx is no longer usable
	rows     []*sql.Rows     // opened by Query in Update, closed before the commit
	touched  map[string]bool // tables written, by base name
	after    []func()        // run after a successful commit
}

// conn runs statements on the DB's write connection (Update) or on a
// read-only *sql.Tx (View), without a context: a context that can end
// makes the driver watch it with a goroutine per statement.
type conn struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
		PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	}
}

func (c conn) Exec(query string, args ...any) (sql.Result, error) {
	return c.q.ExecContext(context.Background(), query, args...)
}

func (c conn) Query(query string, args ...any) (*sql.Rows, error) {
	return c.q.QueryContext(context.Background(), query, args...)
}

func (c conn) QueryRow(query string, args ...any) *sql.Row {
	return c.q.QueryRowContext(context.Background(), query, args...)
}

func (c conn) Prepare(query string) (*sql.Stmt, error) {
	return c.q.PrepareContext(context.Background(), query)
}

// querier is a *sql.DB (reads outside a transaction) or a Tx's conn.
type querier interface {
	Query(query string, args ...any) (*sql.Rows, error)
}

// queryColumn runs a query of one column and returns its values.
func queryColumn[T any](q querier, query string, args ...any) ([]T, error) {
	rs, err := q.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		var v T
		if err := rs.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rs.Err()
}

// closeRows closes the rows Query returned that are still open, as
// database/sql does at the end of a transaction.
func (tx *Tx) closeRows() {
	for _, r := range tx.rows {
		r.Close()
	}
	tx.rows = nil
}

// finish ends an Update's Tx: it cannot run statements any more.
func (tx *Tx) finish() {
	tx.closeRows()
	tx.done = true
}

// errReadOnly is returned by Exec in a View.
var errReadOnly = errors.New("localstore: Exec in a read-only transaction (use Update)")

// Exec runs a statement. Writes to a synced table's view go to the
// overlay and the outbox; writes to <table>_synced fail.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	if tx.done {
		return nil, sql.ErrTxDone
	}
	if !tx.writable {
		return nil, errReadOnly
	}
	tables, ok := tx.db.written[query]
	if !ok {
		tables = writtenTables(query)
		if len(tx.db.written) >= maxStmts {
			clear(tx.db.written)
		}
		tx.db.written[query] = tables
	}
	tx.touch(tables...)
	return tx.exec(len(args) > 0, query, args...)
}

// maxStmts bounds the statements a DB keeps prepared.
const maxStmts = 256

// exec runs a statement of a write transaction; with reuse, through a
// statement the DB keeps prepared on its write connection, so that SQLite
// parses it (and compiles the triggers it fires) once instead of on every
// call. Tx.Exec reuses statements with arguments: those are the ones an
// application repeats.
func (tx *Tx) exec(reuse bool, query string, args ...any) (sql.Result, error) {
	if reuse {
		if st := tx.db.stmt(query); st != nil {
			return st.Exec(args...)
		}
	}
	return tx.tx.Exec(query, args...)
}

// stmt returns the DB's prepared statement for query, preparing it on
// first use; nil when it does not prepare, and the caller then runs query
// itself to get the error. The caller holds db.wmu, in a transaction of
// update.
func (db *DB) stmt(query string) *sql.Stmt {
	if st, ok := db.stmts[query]; ok {
		return st
	}
	st, err := db.w.PrepareContext(context.Background(), query)
	if err != nil {
		return nil
	}
	if len(db.stmts) >= maxStmts {
		db.closeStmts()
	}
	db.stmts[query] = st
	return st
}

// closeStmts closes the statements stmt prepared. The caller holds
// db.wmu.
func (db *DB) closeStmts() {
	for _, st := range db.stmts {
		st.Close()
	}
	clear(db.stmts)
}

// Query runs a query. Rows still open when Update ends are closed.
func (tx *Tx) Query(query string, args ...any) (*sql.Rows, error) {
	if tx.done {
		return nil, sql.ErrTxDone
	}
	rows, err := tx.tx.Query(query, args...)
	if err == nil && tx.writable {
		tx.rows = append(tx.rows, rows)
	}
	return rows, err
}

// QueryRow runs a query that returns at most one row. (After Update
// returned, it reads outside any transaction.)
func (tx *Tx) QueryRow(query string, args ...any) *sql.Row {
	if tx.done {
		return tx.db.sql.QueryRow(query, args...)
	}
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
