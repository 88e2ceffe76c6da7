package localstore

import (
	"database/sql"
	"errors"
	"fmt"
)

// upgrade brings the store's own tables from an older version to
// schemaVersion, in init's transaction. A new store has nothing to
// upgrade.
func upgrade(tx *Tx) error {
	var exists bool
	if err := tx.tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_volt_meta')`).Scan(&exists); err != nil || !exists {
		return err
	}
	v := int64(1)
	if err := tx.tx.QueryRow(`SELECT v FROM _volt_meta WHERE k = 'schema'`).Scan(&v); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	switch {
	case v > schemaVersion:
		return fmt.Errorf("the store has schema version %d, newer than this localstore's (%d)", v, schemaVersion)
	case v == 1:
		return upgradeV1(tx)
	}
	// Version 2 had the same tables, and a _volt_txns row for every local
	// transaction: rows of unsent transactions are still read as such.
	// Version 3 lacked _volt_row_tags, which init creates: its synced rows
	// of shapes with subqueries have no tags until the shape is fetched
	// again.
	return nil
}

// upgradeV1 moves a version 1 store to the current version and keeps
// every outbox entry, transaction and overlay row. Version 1:
//   - keyed _volt_outbox by id, with indexes on ltx and on (tbl, key),
//     and a trigger on it created a _volt_txns row for every local
//     transaction; now the outbox is clustered by (ltx, id), without
//     other indexes, and the Syncer creates the rows;
//   - had a UNIQUE constraint on _volt_txns.seq, whose index got an entry
//     for every transaction; now a partial unique index;
//   - had the views' triggers read the local transaction from
//     _volt_flags, which Update wrote every time; now the triggers call
//     volt_ltx(), and overlays keyed by anything but one INTEGER column
//     are WITHOUT ROWID.
//
// The views go first: renaming a table rewrites the triggers that name it.
func upgradeV1(tx *Tx) error {
	defs, err := allDefs(tx)
	if err != nil {
		return err
	}
	var stmts []string
	for _, d := range defs {
		stmts = append(stmts, "DROP VIEW IF EXISTS "+q(d.name))
	}
	stmts = append(stmts,
		`DROP TRIGGER IF EXISTS _volt_outbox_txn`,
		`DROP INDEX IF EXISTS _volt_outbox_ltx`,
		`DROP INDEX IF EXISTS _volt_outbox_key`,
		`ALTER TABLE _volt_outbox RENAME TO _volt_outbox_v1`,
		outboxDDL,
		`INSERT INTO _volt_outbox(ltx, id, tbl, op, key, vals) SELECT ltx, id, tbl, op, key, vals FROM _volt_outbox_v1`,
		`DROP TABLE _volt_outbox_v1`,
		`ALTER TABLE _volt_txns RENAME TO _volt_txns_v1`,
		txnsDDL,
		`INSERT INTO _volt_txns(ltx, seq, state, txid, lsn) SELECT ltx, seq, state, txid, lsn FROM _volt_txns_v1`,
		`DROP TABLE _volt_txns_v1`)
	if err := execAll(tx, stmts); err != nil {
		return err
	}
	for _, d := range defs {
		if err := migrateOverlay(tx, d, d, true); err != nil {
			return err
		}
		if err := execAll(tx, d.viewDDL()); err != nil {
			return err
		}
	}
	return nil
}
