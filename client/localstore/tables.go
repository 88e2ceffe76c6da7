package localstore

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/voltsync/volt/client"
)

// Declare creates table (its _synced table, overlay, view and triggers)
// from a known schema, so that the application can write it before the
// first Sync, offline. source is the server table ("todos",
// "schema.todos"). When the table exists with another schema it is
// rebuilt as for a schema change (see Sync).
func (db *DB) Declare(table, source string, schema client.Schema) error {
	return db.update(func(tx *Tx) error {
		_, err := db.ensureTable(tx, table, source, schema)
		return err
	})
}

// Tables returns the local tables the store syncs, sorted.
func (db *DB) Tables() ([]string, error) {
	return tableNames(db.sql)
}

// tableNames returns the local tables the store syncs, sorted.
func tableNames(q querier) ([]string, error) {
	return queryColumn[string](q, `SELECT tbl FROM _volt_shapes ORDER BY tbl`)
}

// loadDef reads a table's definition from _volt_shapes; nil when the
// table is not known.
func loadDef(tx *Tx, table string) (*tableDef, error) {
	var source, schemaJSON string
	err := tx.tx.QueryRow(`SELECT source, schema FROM _volt_shapes WHERE tbl = ?`, table).Scan(&source, &schemaJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s client.Schema
	if err := json.Unmarshal([]byte(schemaJSON), &s); err != nil {
		return nil, fmt.Errorf("localstore: stored schema of %s: %w", table, err)
	}
	return newTableDef(table, source, s)
}

// allDefs returns the definitions of every synced table.
func allDefs(tx *Tx) ([]*tableDef, error) {
	names, err := tableNames(tx.tx)
	if err != nil {
		return nil, err
	}
	defs := make([]*tableDef, 0, len(names))
	for _, n := range names {
		d, err := loadDef(tx, n)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	return defs, nil
}

func schemaJSON(s client.Schema) string {
	b, _ := json.Marshal(s) // map keys come out sorted
	return string(b)
}

// ensureTable makes sure table exists with schema: it creates it, or
// rebuilds it when its schema changed.
func (db *DB) ensureTable(tx *Tx, table, source string, schema client.Schema) (*tableDef, error) {
	def, err := newTableDef(table, source, schema)
	if err != nil {
		return nil, err
	}
	old, err := loadDef(tx, table)
	if err != nil {
		return nil, err
	}
	switch {
	case old == nil:
		if err := execAll(tx, def.ddl()); err != nil {
			return nil, fmt.Errorf("localstore: create %s: %w", table, err)
		}
		_, err = tx.tx.Exec(`INSERT INTO _volt_shapes(tbl, source, schema) VALUES (?, ?, ?)`, table, source, schemaJSON(schema))
	case !sameSchema(old, def):
		err = db.rebuild(tx, old, def, schema)
	case old.source != source:
		_, err = tx.tx.Exec(`UPDATE _volt_shapes SET source = ? WHERE tbl = ?`, source, table)
	}
	tx.touch(table)
	return def, err
}

func sameSchema(a, b *tableDef) bool {
	if len(a.cols) != len(b.cols) || a.npk != b.npk {
		return false
	}
	for i := range a.cols {
		x, y := a.cols[i], b.cols[i]
		if x.name != y.name || affinity(x.col) != affinity(y.col) || x.col.Type != y.col.Type || x.col.Dims != y.col.Dims {
			return false
		}
	}
	return true
}

func execAll(tx *Tx, stmts []string) error {
	for _, s := range stmts {
		if _, err := tx.tx.Exec(s); err != nil {
			return fmt.Errorf("%w\n%s", err, s)
		}
	}
	return nil
}

// rebuild moves table from the old schema to the new one: the synced
// table, view and triggers are made again (the shape refetches the rows);
// overlay rows keep the columns both schemas have; pending local
// transactions that wrote a column (or a key) the new schema lacks are
// rolled back with code "schema".
func (db *DB) rebuild(tx *Tx, old, def *tableDef, schema client.Schema) error {
	samePK := old.npk == def.npk
	for i := 0; samePK && i < def.npk; i++ {
		samePK = old.cols[i].name == def.cols[i].name
	}
	if err := db.rejectUnfit(tx, def, samePK); err != nil {
		return err
	}
	if err := execAll(tx, old.drop()); err != nil {
		return err
	}
	if _, err := tx.tx.Exec(`DELETE FROM _volt_row_tags WHERE tbl = ?`, def.name); err != nil {
		return err
	}
	db.forgetMoves(def.name)
	if err := migrateOverlay(tx, old, def, samePK); err != nil {
		return err
	}
	if err := execAll(tx, def.ddl()); err != nil {
		return fmt.Errorf("localstore: rebuild %s: %w", def.name, err)
	}
	_, err := tx.tx.Exec(`UPDATE _volt_shapes SET schema = ?, source = ? WHERE tbl = ?`, schemaJSON(schema), def.source, def.name)
	return err
}

// migrateOverlay copies the overlay into a table of the new shape,
// keeping the columns both have. Without the same primary key the
// overlay cannot be kept (its transactions were rolled back).
func migrateOverlay(tx *Tx, old, def *tableDef, samePK bool) error {
	if !samePK {
		return execAll(tx, []string{"DROP TABLE " + old.local(), def.localDDL()})
	}
	tmp := q(def.name + "_local_old")
	if _, err := tx.tx.Exec("ALTER TABLE " + old.local() + " RENAME TO " + tmp); err != nil {
		return err
	}
	if _, err := tx.tx.Exec(def.localDDL()); err != nil {
		return err
	}
	var shared []colDef
	for _, c := range def.cols {
		if old.index(c.name) >= 0 {
			shared = append(shared, c)
		}
	}
	cols := list(shared, ", ", func(c colDef) string { return q(c.name) })
	if _, err := tx.tx.Exec(fmt.Sprintf(`INSERT INTO %s(%s, changed_columns, is_deleted, write_id)
		SELECT %s, changed_columns, is_deleted, write_id FROM %s`, def.local(), cols, cols, tmp)); err != nil {
		return err
	}
	_, err := tx.tx.Exec("DROP TABLE " + tmp)
	return err
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
