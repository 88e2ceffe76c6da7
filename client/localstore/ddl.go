package localstore

import (
	"fmt"
	"sort"
	"strings"

	"github.com/voltsync/volt/client"
)

// tableDef is a synced table: its local name, the server table and the
// columns from the shape's electric-schema, primary key first.
type tableDef struct {
	name   string
	source string
	cols   []colDef
	npk    int // the first npk columns are the primary key
}

type colDef struct {
	name string
	col  client.Column
}

// newTableDef orders the columns of s: the primary key in key order, then
// the others by name.
func newTableDef(name, source string, s client.Schema) (*tableDef, error) {
	d := &tableDef{name: name, source: source}
	for n, c := range s {
		d.cols = append(d.cols, colDef{n, c})
	}
	sort.Slice(d.cols, func(i, j int) bool {
		a, b := d.cols[i], d.cols[j]
		switch {
		case a.col.PKIndex != nil && b.col.PKIndex != nil:
			return *a.col.PKIndex < *b.col.PKIndex
		case a.col.PKIndex != nil || b.col.PKIndex != nil:
			return a.col.PKIndex != nil
		}
		return a.name < b.name
	})
	for _, c := range d.cols {
		if c.col.PKIndex != nil {
			d.npk++
		}
	}
	if d.npk == 0 {
		return nil, fmt.Errorf("localstore: table %s: the shape's schema has no primary key", name)
	}
	return d, nil
}

func (d *tableDef) pk() []colDef     { return d.cols[:d.npk] }
func (d *tableDef) nonPK() []colDef  { return d.cols[d.npk:] }
func (d *tableDef) synced() string   { return q(d.name + "_synced") }
func (d *tableDef) local() string    { return q(d.name + "_local") }
func (d *tableDef) col(n string) int { return d.index(n) }

func (d *tableDef) index(n string) int {
	for i, c := range d.cols {
		if c.name == n {
			return i
		}
	}
	return -1
}

// q quotes an SQLite identifier.
func q(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// lit quotes an SQLite string literal.
func lit(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// affinity maps a Postgres type to the SQLite column type: integers and
// booleans to INTEGER, floats to REAL, bytea to BLOB, everything else
// (numeric included, to stay exact) to TEXT. Arrays are JSON text.
func affinity(c client.Column) string {
	if c.Dims > 0 {
		return "TEXT"
	}
	switch c.Type {
	case "int2", "int4", "int8", "bool", "oid":
		return "INTEGER"
	case "float4", "float8":
		return "REAL"
	case "bytea":
		return "BLOB"
	}
	return "TEXT"
}

// jsonExpr is the SQL that turns a column reference into the JSON value
// the write endpoint expects.
func jsonExpr(c client.Column, ref string) string {
	switch {
	case c.Dims > 0 || c.Type == "json" || c.Type == "jsonb":
		return "json(" + ref + ")"
	case c.Type == "bytea":
		return "CASE WHEN " + ref + ` IS NULL THEN NULL ELSE '\x' || lower(hex(` + ref + ")) END"
	case c.Type == "bool":
		return "CASE WHEN " + ref + " IS NULL THEN NULL WHEN " + ref + " THEN json('true') ELSE json('false') END"
	}
	return ref
}

// list joins f over cols with sep.
func list(cols []colDef, sep string, f func(colDef) string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = f(c)
	}
	return strings.Join(parts, sep)
}

// pkMatch is "a.k1 = b.k1 AND …".
func (d *tableDef) pkMatch(a, b string) string {
	return list(d.pk(), " AND ", func(c colDef) string { return a + "." + q(c.name) + " = " + b + "." + q(c.name) })
}

// jsonObject is json_object('c', <json of ref.c>, …) over cols.
func jsonObject(cols []colDef, ref string) string {
	return "json_object(" + list(cols, ", ", func(c colDef) string {
		return lit(c.name) + ", " + jsonExpr(c.col, ref+"."+q(c.name))
	}) + ")"
}

// allChanged is the changed_columns value of a row written whole.
func (d *tableDef) allChanged() string {
	return "," + list(d.cols, "", func(c colDef) string { return c.name + "," })
}

// ddl returns the statements that create the synced table, the overlay,
// the view and its triggers.
func (d *tableDef) ddl() []string {
	return append([]string{d.syncedDDL(), d.localDDL(), d.syncedGuard("INSERT"), d.syncedGuard("UPDATE"),
		d.syncedGuard("DELETE")}, d.viewDDL()...)
}

// viewDDL returns the statements that create the view and its triggers.
func (d *tableDef) viewDDL() []string {
	return []string{d.createView(), d.insertTrigger(), d.updateTrigger(), d.deleteTrigger()}
}

// drop returns the statements that remove what ddl creates, except the
// overlay.
func (d *tableDef) drop() []string {
	return []string{"DROP VIEW IF EXISTS " + q(d.name), "DROP TABLE IF EXISTS " + d.synced()}
}

func (d *tableDef) columnsDDL(notNullPK bool) string {
	return list(d.cols, ", ", func(c colDef) string {
		s := q(c.name) + " " + affinity(c.col)
		if notNullPK && c.col.PKIndex != nil {
			s += " NOT NULL"
		}
		return s
	})
}

func (d *tableDef) pkList() string {
	return list(d.pk(), ", ", func(c colDef) string { return q(c.name) })
}

func (d *tableDef) syncedDDL() string {
	return fmt.Sprintf("CREATE TABLE %s (%s, PRIMARY KEY (%s))", d.synced(), d.columnsDDL(true), d.pkList())
}

// localDDL creates the overlay. Unless its key is one INTEGER column (the
// rowid), it is WITHOUT ROWID: the table is its primary key's b-tree, so
// a local write writes one b-tree for it instead of two.
func (d *tableDef) localDDL() string {
	without := " WITHOUT ROWID"
	if d.npk == 1 && affinity(d.cols[0].col) == "INTEGER" {
		without = ""
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (%s, changed_columns TEXT NOT NULL DEFAULT ',',
		is_deleted INTEGER NOT NULL DEFAULT 0, write_id INTEGER NOT NULL, PRIMARY KEY (%s))%s`,
		d.local(), d.columnsDDL(true), d.pkList(), without)
}

// syncedGuard makes the synced table read-only except for the store.
func (d *tableDef) syncedGuard(op string) string {
	return fmt.Sprintf(`CREATE TRIGGER %s BEFORE %s ON %s WHEN (SELECT syncing FROM _volt_flags) = 0
		BEGIN SELECT RAISE(ABORT, %s); END`, q(d.name+"_synced_ro_"+strings.ToLower(op)), op, d.synced(),
		lit(d.name+"_synced is read-only: write to "+d.name))
}

// createView combines the synced rows and the overlay: a column comes
// from the overlay when it is in changed_columns, and rows the overlay
// deletes are hidden; overlay rows without a synced row are local inserts.
func (d *tableDef) createView() string {
	merged := list(d.cols, ", ", func(c colDef) string {
		if c.col.PKIndex != nil {
			return "s." + q(c.name)
		}
		return fmt.Sprintf("CASE WHEN instr(l.changed_columns, %s) > 0 THEN l.%s ELSE s.%s END AS %s",
			lit(","+c.name+","), q(c.name), q(c.name), q(c.name))
	})
	localCols := list(d.cols, ", ", func(c colDef) string { return "l." + q(c.name) })
	return fmt.Sprintf(`CREATE VIEW %s AS
SELECT %s FROM %s s LEFT JOIN %s l ON %s WHERE l.is_deleted IS NOT 1
UNION ALL
SELECT %s FROM %s l WHERE l.is_deleted = 0 AND NOT EXISTS (SELECT 1 FROM %s s WHERE %s)`,
		q(d.name), merged, d.synced(), d.local(), d.pkMatch("s", "l"),
		localCols, d.local(), d.synced(), d.pkMatch("s", "l"))
}

// curLtx is the local transaction of the running Update (see writeState).
const curLtx = "volt_ltx()"

func (d *tableDef) outboxInsert(op, key, vals, where string) string {
	s := fmt.Sprintf("INSERT INTO _volt_outbox(ltx, id, tbl, op, key, vals) SELECT %s, volt_id(), %s, %s, %s, %s",
		curLtx, lit(d.name), lit(op), key, vals)
	if where != "" {
		s += " WHERE " + where
	}
	return s + ";"
}

func (d *tableDef) insertTrigger() string {
	cols := list(d.cols, ", ", func(c colDef) string { return q(c.name) })
	newVals := list(d.cols, ", ", func(c colDef) string { return "NEW." + q(c.name) })
	set := list(d.cols, ", ", func(c colDef) string { return q(c.name) + " = excluded." + q(c.name) })
	nullPK := list(d.pk(), " OR ", func(c colDef) string { return "NEW." + q(c.name) + " IS NULL" })
	match := func(t string) string {
		return list(d.pk(), " AND ", func(c colDef) string { return t + "." + q(c.name) + " = NEW." + q(c.name) })
	}
	// The key is in the view when the overlay has it undeleted, or has no
	// row for it and the synced table has it: two lookups by key rather
	// than a query of the view.
	return fmt.Sprintf(`CREATE TRIGGER %s INSTEAD OF INSERT ON %s BEGIN
SELECT RAISE(ABORT, %s) WHERE %s;
SELECT RAISE(ABORT, %s) WHERE coalesce((SELECT l.is_deleted = 0 FROM %s l WHERE %s), EXISTS (SELECT 1 FROM %s s WHERE %s));
INSERT INTO %s(%s, changed_columns, is_deleted, write_id) VALUES (%s, %s, 0, %s)
  ON CONFLICT DO UPDATE SET %s, changed_columns = excluded.changed_columns, is_deleted = 0, write_id = excluded.write_id;
%s
END`, q(d.name+"_insert"), q(d.name),
		lit("NOT NULL constraint failed: "+d.name+" primary key"), nullPK,
		lit("UNIQUE constraint failed: "+d.name+" primary key"), d.local(), match("l"), d.synced(), match("s"),
		d.local(), cols, newVals, lit(d.allChanged()), curLtx, set,
		d.outboxInsert("insert", jsonObject(d.pk(), "NEW"), jsonObject(d.cols, "NEW"), ""))
}

func (d *tableDef) updateTrigger() string {
	changed := func(c colDef) string { return "NEW." + q(c.name) + " IS NOT OLD." + q(c.name) }
	anyChanged := list(d.nonPK(), " OR ", changed)
	if anyChanged == "" {
		anyChanged = "0"
	}
	pkChanged := list(d.pk(), " OR ", changed)
	cols := list(d.cols, ", ", func(c colDef) string { return q(c.name) })
	newVals := list(d.cols, ", ", func(c colDef) string { return "NEW." + q(c.name) })
	delta := "','" + list(d.nonPK(), "", func(c colDef) string {
		return fmt.Sprintf(" || CASE WHEN %s THEN %s ELSE '' END", changed(c), lit(c.name+","))
	})
	merge := "changed_columns" + list(d.nonPK(), "", func(c colDef) string {
		p := lit("," + c.name + ",")
		return fmt.Sprintf(" || CASE WHEN instr(excluded.changed_columns, %s) > 0 AND instr(changed_columns, %s) = 0 THEN %s ELSE '' END",
			p, p, lit(c.name+","))
	})
	set := list(d.nonPK(), ", ", func(c colDef) string { return q(c.name) + " = excluded." + q(c.name) })
	if set != "" {
		set += ", "
	}
	vals := "json_remove(" + jsonObject(d.nonPK(), "NEW") + list(d.nonPK(), "", func(c colDef) string {
		return fmt.Sprintf(", CASE WHEN NEW.%s IS OLD.%s THEN %s ELSE '$.__volt_none__' END", q(c.name), q(c.name), lit(`$."`+c.name+`"`))
	}) + ")"
	return fmt.Sprintf(`CREATE TRIGGER %s INSTEAD OF UPDATE ON %s BEGIN
SELECT RAISE(ABORT, %s) WHERE %s;
INSERT INTO %s(%s, changed_columns, is_deleted, write_id) SELECT %s, %s, 0, %s WHERE %s
  ON CONFLICT DO UPDATE SET %schanged_columns = %s, write_id = excluded.write_id;
%s
END`, q(d.name+"_update"), q(d.name),
		lit("cannot change the primary key of "+d.name), pkChanged,
		d.local(), cols, newVals, delta, curLtx, anyChanged, set, merge,
		d.outboxInsert("update", jsonObject(d.pk(), "OLD"), vals, anyChanged))
}

func (d *tableDef) deleteTrigger() string {
	pkCols := list(d.pk(), ", ", func(c colDef) string { return q(c.name) })
	oldVals := list(d.pk(), ", ", func(c colDef) string { return "OLD." + q(c.name) })
	return fmt.Sprintf(`CREATE TRIGGER %s INSTEAD OF DELETE ON %s BEGIN
INSERT INTO %s(%s, is_deleted, write_id) VALUES (%s, 1, %s)
  ON CONFLICT DO UPDATE SET is_deleted = 1, write_id = excluded.write_id;
%s
END`, q(d.name+"_delete"), q(d.name), d.local(), pkCols, oldVals, curLtx,
		d.outboxInsert("delete", jsonObject(d.pk(), "OLD"), "NULL", ""))
}
