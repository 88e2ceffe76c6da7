package localstore

import (
	"database/sql"
	"fmt"
	"strings"

	"github.com/voltsync/volt/client"

	"github.com/voltsync/volt"
)

// applier writes changes of one table's shape to its synced table, with a
// prepared statement per set of columns.
type applier struct {
	tx    *Tx
	def   *tableDef
	stmts map[string]*sql.Stmt
	del   *sql.Stmt
	idx   []int // scratch: column indexes of a change
	args  []any
	key   []byte // scratch: the statement's cache key
}

func newApplier(tx *Tx, def *tableDef) *applier {
	return &applier{tx: tx, def: def, stmts: map[string]*sql.Stmt{}}
}

func (a *applier) close() {
	for _, s := range a.stmts {
		s.Close()
	}
	if a.del != nil {
		a.del.Close()
	}
}

// apply writes one change: inserts and updates are upserts of the columns
// the change carries (so an insert that a move-in brings for a row that
// is already there updates it), deletes remove the row.
func (a *applier) apply(c *client.Change) error {
	if c.Operation == volt.OpDelete {
		return a.delete(c.Value)
	}
	a.idx, a.args = a.idx[:0], a.args[:0]
	a.key = a.key[:0]
	for i, col := range a.def.cols {
		v, ok := c.Value[col.name]
		if !ok {
			continue
		}
		a.idx = append(a.idx, i)
		a.args = append(a.args, toSQL(col.col, v))
		a.key = append(a.key, byte(i), byte(i>>8))
	}
	stmt, err := a.upsert(string(a.key))
	if err != nil {
		return err
	}
	_, err = stmt.Exec(a.args...)
	return err
}

// upsert returns the statement for the columns in a.idx.
func (a *applier) upsert(key string) (*sql.Stmt, error) {
	if s, ok := a.stmts[key]; ok {
		return s, nil
	}
	var names, marks, set []string
	for _, i := range a.idx {
		c := a.def.cols[i]
		names = append(names, q(c.name))
		marks = append(marks, "?")
		if c.col.PKIndex == nil {
			set = append(set, q(c.name)+" = excluded."+q(c.name))
		}
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(set, ", ")
	}
	stmt := fmt.Sprintf("INSERT INTO %s(%s) VALUES (%s) ON CONFLICT(%s) %s", a.def.synced(),
		strings.Join(names, ", "), strings.Join(marks, ", "), a.def.pkList(), conflict)
	s, err := a.tx.tx.Prepare(stmt)
	if err != nil {
		return nil, err
	}
	a.stmts[key] = s
	return s, nil
}

func (a *applier) delete(row client.Row) error {
	pk := make([]any, 0, len(a.def.pk()))
	for _, c := range a.def.pk() {
		pk = append(pk, toSQL(c.col, row[c.name]))
	}
	return a.deletePK(pk)
}

// deletePK deletes the synced row with primary key pk (SQLite values).
func (a *applier) deletePK(pk []any) error {
	if a.del == nil {
		where := list(a.def.pk(), " AND ", func(c colDef) string { return q(c.name) + " = ?" })
		s, err := a.tx.tx.Prepare("DELETE FROM " + a.def.synced() + " WHERE " + where)
		if err != nil {
			return err
		}
		a.del = s
	}
	_, err := a.del.Exec(pk...)
	return err
}
