package localstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
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
//
// The outbox has no index by row (it would cost every local write a
// page): rollback reads it whole, twice, which is fine for a rare event.
func (db *DB) rollback(tx *Tx, first map[int64]Rollback) error {
	if len(first) == 0 {
		return nil
	}
	done := make(map[int64]Rollback, len(first))
	from := int64(math.MaxInt64)
	for ltx, rb := range first {
		rb.LocalTx = ltx
		done[ltx] = rb
		from = min(from, ltx)
	}
	rows, err := findDependents(tx, done, from)
	if err != nil {
		return err
	}
	if err := tx.keepLtx(); err != nil {
		return err
	}
	for ltx := range done {
		if _, err := tx.tx.Exec(`DELETE FROM _volt_outbox WHERE ltx = ?`, ltx); err != nil {
			return err
		}
		if _, err := tx.tx.Exec(`DELETE FROM _volt_txns WHERE ltx = ?`, ltx); err != nil {
			return err
		}
	}
	if err := rebuildOverlayRows(tx, rows); err != nil {
		return err
	}
	if f := db.opts.OnRollback; f != nil {
		for _, rb := range done {
			rb := rb
			tx.after = append(tx.after, func() { f(rb) })
		}
	}
	return nil
}

// findDependents reads the outbox in order from local transaction from
// on. A transaction in done is rolled back; so is a later one without a
// seq that touches a row a rolled back one touched (it may have built on
// that write), and then the ones that touch its rows. It adds the
// dependents to done, sets the Tables of all, and returns the rows the
// rolled back transactions touched, each with the first of them that did.
func findDependents(tx *Tx, done map[int64]Rollback, from int64) (map[rowRef]int64, error) {
	rs, err := tx.tx.Query(`SELECT o.ltx, o.tbl, o.key, t.seq IS NULL FROM _volt_outbox o LEFT JOIN _volt_txns t ON t.ltx = o.ltx
		WHERE o.ltx >= ? ORDER BY o.ltx, o.id`, from)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	rows := map[rowRef]int64{}
	cur, unsent := int64(-1), false
	var refs []rowRef // cur's rows
	flush := func() {
		rb, ok := done[cur]
		for i := 0; !ok && unsent && i < len(refs); i++ {
			if by, tainted := rows[refs[i]]; tainted {
				rb, ok = Rollback{LocalTx: cur, Code: CodeDependent,
					Message: fmt.Sprintf("touches a row of rolled back local transaction %d", by)}, true
			}
		}
		if !ok {
			return
		}
		seen := map[string]bool{}
		for _, r := range refs {
			if _, tainted := rows[r]; !tainted {
				rows[r] = cur
			}
			if !seen[r.tbl] {
				seen[r.tbl] = true
				rb.Tables = append(rb.Tables, r.tbl)
			}
		}
		done[cur] = rb
	}
	for rs.Next() {
		var ltx int64
		var r rowRef
		var u bool
		if err := rs.Scan(&ltx, &r.tbl, &r.key, &u); err != nil {
			return nil, err
		}
		if ltx != cur {
			flush()
			cur, unsent, refs = ltx, u, refs[:0]
		}
		refs = append(refs, r)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	flush()
	return rows, nil
}

// rebuildOverlayRows deletes the overlay rows in rows and applies again
// the outbox entries that remain for them, in order.
func rebuildOverlayRows(tx *Tx, rows map[rowRef]int64) error {
	if len(rows) == 0 {
		return nil
	}
	type entry struct {
		ltx      int64
		op, vals string
	}
	entries := map[rowRef][]entry{}
	rs, err := tx.tx.Query(`SELECT ltx, tbl, key, op, coalesce(vals, '') FROM _volt_outbox ORDER BY ltx, id`)
	if err != nil {
		return err
	}
	for rs.Next() {
		var r rowRef
		var e entry
		if err := rs.Scan(&e.ltx, &r.tbl, &r.key, &e.op, &e.vals); err != nil {
			rs.Close()
			return err
		}
		if _, ok := rows[r]; ok {
			entries[r] = append(entries[r], e)
		}
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return err
	}
	defs := map[string]*tableDef{}
	for r := range rows {
		tx.touch(r.tbl)
		def, ok := defs[r.tbl]
		if !ok {
			if def, err = loadDef(tx, r.tbl); err != nil {
				return err
			}
			defs[r.tbl] = def
		}
		if def == nil {
			continue
		}
		key, err := decodeObject(r.key)
		if err != nil {
			return err
		}
		where, args := def.keyWhere(key)
		if _, err := tx.tx.Exec("DELETE FROM "+def.local()+" WHERE "+where, args...); err != nil {
			return err
		}
		for _, e := range entries[r] {
			if err := def.replay(tx, key, e.ltx, e.op, e.vals); err != nil {
				return err
			}
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
	rs, err := tx.tx.Query(`SELECT o.ltx, o.op, o.key, coalesce(o.vals, '{}') FROM _volt_outbox o LEFT JOIN _volt_txns t ON t.ltx = o.ltx
		WHERE o.tbl = ? AND t.seq IS NULL ORDER BY o.ltx, o.id`, def.name)
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
