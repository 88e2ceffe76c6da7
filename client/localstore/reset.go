package localstore

import "fmt"

// ResetSynced empties <table>_synced and forgets the shape's position:
// the next Sync of table fetches the shape again. Local changes (overlay
// and outbox) are kept.
func (db *DB) ResetSynced(table string) error {
	return db.update(func(tx *Tx) error {
		def, err := loadDef(tx, table)
		if err != nil {
			return err
		}
		if def == nil {
			return fmt.Errorf("localstore: no synced table %q", table)
		}
		if _, err := tx.tx.Exec(`UPDATE _volt_flags SET syncing = 1`); err != nil {
			return err
		}
		if err := refetch(tx, table, ""); err != nil {
			return err
		}
		tx.touch(table)
		_, err = tx.tx.Exec(`UPDATE _volt_flags SET syncing = 0`)
		return err
	})
}

// DiscardLocal drops table's local changes that were never sent: the
// overlay rows go, and the unsent local transactions lose their entries
// for table (a transaction left empty goes too). Transactions that
// already have a seq are still sent, since the server may have applied
// them; their rows show the server's values once echoed. Synced rows are
// kept.
func (db *DB) DiscardLocal(table string) error {
	return db.update(func(tx *Tx) error {
		def, err := loadDef(tx, table)
		if err != nil {
			return err
		}
		if def == nil {
			return fmt.Errorf("localstore: no synced table %q", table)
		}
		stmts := []string{
			"DELETE FROM " + def.local(),
			`DELETE FROM _volt_outbox WHERE tbl = ` + lit(table) + ` AND ltx NOT IN (SELECT ltx FROM _volt_txns WHERE seq IS NOT NULL)`,
			`DELETE FROM _volt_txns WHERE seq IS NULL AND ltx NOT IN (SELECT ltx FROM _volt_outbox)`,
		}
		tx.touch(table)
		if err := tx.keepLtx(); err != nil {
			return err
		}
		return execAll(tx, stmts)
	})
}
