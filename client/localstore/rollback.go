package localstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// rowRef is one row an outbox entry touched: local table and key JSON.
type rowRef struct{ tbl, key string }

// Codes of Rollback besides the server's rejection codes.
const (
	// CodeDependent: the transaction touched a row of an earlier rolled
	// back one and was never sent.
	CodeDependent = "dependent"
	// CodeSchema: the table's new schema no longer fits the transaction.
	CodeSchema = "schema"
)

// rollback undoes the local transactions in first (ltx → why) and every
// later unsent local transaction that touched one of their rows,
// transitively:
// their outbox entries go, and the overlay rows they touched are rebuilt
// from the transactions that remain. The Rollbacks are reported to
// Options.OnRollback after the commit.
func (db *DB) rollback(tx *Tx, first map[int64]Rollback) error {
	done := map[int64]Rollback{}
	rows := map[rowRef]int64{} // the earliest rolled back ltx that touched the row
	queue := make([]int64, 0, len(first))
	for ltx, rb := range first {
		done[ltx] = rb
		queue = append(queue, ltx)
	}
	for len(queue) > 0 {
		ltx := queue[0]
		queue = queue[1:]
		refs, tables, err := txnRows(tx, ltx)
		if err != nil {
			return err
		}
		rb := done[ltx]
		rb.LocalTx, rb.Tables = ltx, tables
		done[ltx] = rb
		for _, r := range refs {
			if first, ok := rows[r]; ok && first <= ltx {
				continue // its later transactions are already found
			}
			rows[r] = ltx
			deps, err := unsentTouching(tx, r, ltx)
			if err != nil {
				return err
			}
			for _, d := range deps {
				if _, ok := done[d]; !ok {
					done[d] = Rollback{Code: CodeDependent, Message: fmt.Sprintf("touches a row of rolled back local transaction %d", ltx)}
					queue = append(queue, d)
				}
			}
		}
	}
	for ltx := range done {
		if _, err := tx.tx.Exec(`DELETE FROM _volt_outbox WHERE ltx = ?`, ltx); err != nil {
			return err
		}
		if _, err := tx.tx.Exec(`DELETE FROM _volt_txns WHERE ltx = ?`, ltx); err != nil {
			return err
		}
	}
	for r := range rows {
		if err := rebuildOverlayRow(tx, r); err != nil {
			return err
		}
		tx.touch(r.tbl)
	}
	if f := db.opts.OnRollback; f != nil {
		for _, rb := range done {
			rb := rb
			tx.after = append(tx.after, func() { f(rb) })
		}
	}
	return nil
}

// txnRows returns the rows and tables a local transaction touched.
func txnRows(tx *Tx, ltx int64) ([]rowRef, []string, error) {
	rs, err := tx.tx.Query(`SELECT tbl, key FROM _volt_outbox WHERE ltx = ? ORDER BY id`, ltx)
	if err != nil {
		return nil, nil, err
	}
	defer rs.Close()
	var refs []rowRef
	seen := map[string]bool{}
	var tables []string
	for rs.Next() {
		var r rowRef
		if err := rs.Scan(&r.tbl, &r.key); err != nil {
			return nil, nil, err
		}
		refs = append(refs, r)
		if !seen[r.tbl] {
			seen[r.tbl] = true
			tables = append(tables, r.tbl)
		}
	}
	return refs, tables, rs.Err()
}

// unsentTouching returns the local transactions after ltx, without a
// seq, that touched row r: those that may have built on ltx's write. An
// earlier one does not depend on ltx (a schema change can reject a later
// write of a row and keep an earlier one).
func unsentTouching(tx *Tx, r rowRef, ltx int64) ([]int64, error) {
	rs, err := tx.tx.Query(`SELECT DISTINCT o.ltx FROM _volt_outbox o JOIN _volt_txns t ON t.ltx = o.ltx
		WHERE o.tbl = ? AND o.key = ? AND t.seq IS NULL AND o.ltx > ?`, r.tbl, r.key, ltx)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []int64
	for rs.Next() {
		var l int64
		if err := rs.Scan(&l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rs.Err()
}

// rebuildOverlayRow deletes the overlay row r and applies again the
// outbox entries that remain for it, in order.
func rebuildOverlayRow(tx *Tx, r rowRef) error {
	def, err := loadDef(tx, r.tbl)
	if err != nil || def == nil {
		return err
	}
	key, err := decodeObject(r.key)
	if err != nil {
		return err
	}
	where, args := def.keyWhere(key)
	if _, err := tx.tx.Exec("DELETE FROM "+def.local()+" WHERE "+where, args...); err != nil {
		return err
	}
	rs, err := tx.tx.Query(`SELECT ltx, op, vals FROM _volt_outbox WHERE tbl = ? AND key = ? ORDER BY id`, r.tbl, r.key)
	if err != nil {
		return err
	}
	type entry struct {
		ltx      int64
		op, vals string
	}
	var es []entry
	for rs.Next() {
		var e entry
		var vals *string
		if err := rs.Scan(&e.ltx, &e.op, &vals); err != nil {
			rs.Close()
			return err
		}
		if vals != nil {
			e.vals = *vals
		}
		es = append(es, e)
	}
	rs.Close()
	for _, e := range es {
		if err := def.replay(tx, key, e.ltx, e.op, e.vals); err != nil {
			return err
		}
	}
	return nil
}

// keyWhere is the condition matching a key given as JSON values.
func (d *tableDef) keyWhere(key map[string]json.RawMessage) (string, []any) {
	conds := make([]string, d.npk)
	args := make([]any, d.npk)
	for i, c := range d.pk() {
		conds[i] = q(c.name) + " = ?"
		args[i] = fromJSON(c.col, key[c.name])
	}
	return strings.Join(conds, " AND "), args
}

// replay applies one outbox entry to the overlay, as the view's trigger
// did when the application wrote it.
func (d *tableDef) replay(tx *Tx, key map[string]json.RawMessage, ltx int64, op, valsJSON string) error {
	vals, err := decodeObject(valsJSON)
	if err != nil {
		return err
	}
	var cols []colDef
	var args []any
	for _, c := range d.cols {
		raw, inKey := key[c.name]
		if v, ok := vals[c.name]; ok {
			raw, inKey = v, true
		}
		if inKey {
			cols = append(cols, c)
			args = append(args, fromJSON(c.col, raw))
		}
	}
	names := list(cols, ", ", func(c colDef) string { return q(c.name) })
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	var set, changed string
	switch op {
	case "delete":
		return d.upsertOverlay(tx, names, marks, args, "','", "1", ltx, "is_deleted = 1")
	case "insert":
		changed = lit(d.allChanged())
		set = list(cols, ", ", func(c colDef) string { return q(c.name) + " = excluded." + q(c.name) }) +
			", changed_columns = excluded.changed_columns, is_deleted = 0"
	default:
		var nonPK []colDef
		for _, c := range cols {
			if c.col.PKIndex == nil {
				nonPK = append(nonPK, c)
			}
		}
		changed = lit("," + list(nonPK, "", func(c colDef) string { return c.name + "," }))
		set = list(nonPK, "", func(c colDef) string { return q(c.name) + " = excluded." + q(c.name) + ", " }) +
			"changed_columns = changed_columns" + list(nonPK, "", func(c colDef) string {
			p := lit("," + c.name + ",")
			return fmt.Sprintf(" || CASE WHEN instr(changed_columns, %s) = 0 THEN %s ELSE '' END", p, lit(c.name+","))
		})
	}
	return d.upsertOverlay(tx, names, marks, args, changed, "0", ltx, set)
}

func (d *tableDef) upsertOverlay(tx *Tx, names, marks string, args []any, changed, deleted string, ltx int64, set string) error {
	stmt := fmt.Sprintf(`INSERT INTO %s(%s, changed_columns, is_deleted, write_id) VALUES (%s, %s, %s, ?)
		ON CONFLICT DO UPDATE SET %s, write_id = excluded.write_id`, d.local(), names, marks, changed, deleted, set)
	_, err := tx.tx.Exec(stmt, append(args, ltx)...)
	return err
}

// rejectUnfit rolls back the unsent local transactions that wrote def's
// table with a column (or, when the key changed, any row) that def no
// longer has.
func (db *DB) rejectUnfit(tx *Tx, def *tableDef, samePK bool) error {
	rs, err := tx.tx.Query(`SELECT o.ltx, o.op, o.key, coalesce(o.vals, '{}') FROM _volt_outbox o JOIN _volt_txns t ON t.ltx = o.ltx
		WHERE o.tbl = ? AND t.seq IS NULL ORDER BY o.id`, def.name)
	if err != nil {
		return err
	}
	bad := map[int64]Rollback{}
	for rs.Next() {
		var ltx int64
		var op, key, vals string
		if err := rs.Scan(&ltx, &op, &key, &vals); err != nil {
			rs.Close()
			return err
		}
		if msg := def.unfit(op, vals, samePK); msg != "" {
			if _, ok := bad[ltx]; !ok {
				bad[ltx] = Rollback{Code: CodeSchema, Message: msg}
			}
		}
	}
	rs.Close()
	if len(bad) == 0 {
		return nil
	}
	return db.rollback(tx, bad)
}

// unfit says why an outbox entry does not fit def ("" when it does). An
// insert carries every column of the old schema, but the Syncer leaves its
// NULLs out, so only a value it sets makes a dropped column count.
func (d *tableDef) unfit(op, vals string, samePK bool) string {
	if !samePK {
		return "the primary key of " + d.name + " changed on the server"
	}
	m, err := decodeObject(vals)
	if err != nil {
		return "unreadable values"
	}
	for _, n := range sortedKeys(m) {
		if op == "insert" && string(bytes.TrimSpace(m[n])) == "null" {
			continue
		}
		if d.index(n) < 0 {
			return fmt.Sprintf("column %s of %s no longer exists on the server", n, d.name)
		}
	}
	return ""
}
