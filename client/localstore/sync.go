package localstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/voltsync/volt/client"
)

// Sync follows a shape into table: the rows land in <table>_synced, the
// application reads the view <table>. Each batch is applied in one SQLite
// transaction together with the shape's handle and offset, so after a
// restart Sync resumes where it stopped (a Resume option in opts is
// overridden). The table is created from the shape's electric-schema on the
// first batch; when a must-refetch brings another schema, the table, view
// and triggers are rebuilt and unsent local transactions that no longer
// fit are rolled back (Rollback.Code "schema"). A must-refetch empties
// <table>_synced and leaves the overlay alone.
//
// Sync returns when ctx ends (ctx's cause) or with the stream's error.
func (db *DB) Sync(ctx context.Context, c *client.Client, def client.ShapeDef, table string, opts ...client.ShapeOption) error {
	if def.Table == "" {
		def.Table = table
	}
	handle, offset, err := db.position(table, def.Table)
	if err != nil {
		return err
	}
	st, err := c.Stream(def, append(opts, client.Resume(handle, offset))...)
	if err != nil {
		return err
	}
	db.wmu.Lock()
	db.forgetMoves(table) // loaded from the store by the first batch
	db.wmu.Unlock()
	return st.Run(ctx, func(b client.Batch) error {
		return db.applyBatch(table, def.Table, st.Schema(), b)
	})
}

// position returns the stored handle and offset of table's shape; a
// table synced from another source starts again.
func (db *DB) position(table, source string) (handle, offset string, err error) {
	var src string
	err = db.sql.QueryRow(`SELECT source, handle, "offset" FROM _volt_shapes WHERE tbl = ?`, table).Scan(&src, &handle, &offset)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && src != source) {
		return "", "-1", nil
	}
	if handle == "" {
		offset = "-1"
	}
	return handle, offset, err
}

// applyBatch applies one batch of table's shape.
func (db *DB) applyBatch(table, source string, schema client.Schema, b client.Batch) error {
	return db.update(func(tx *Tx) error {
		if _, err := tx.tx.Exec(`UPDATE _volt_flags SET syncing = 1`); err != nil {
			return err
		}
		if err := db.applyEvents(tx, table, source, schema, b); err != nil {
			db.forgetMoves(table) // the transaction rolls back
			return err
		}
		if _, err := tx.tx.Exec(`UPDATE _volt_flags SET syncing = 0`); err != nil {
			return err
		}
		return clearEchoed(tx)
	})
}

func (db *DB) applyEvents(tx *Tx, table, source string, schema client.Schema, b client.Batch) error {
	if len(b.Events) > 0 {
		if _, ok := b.Events[0].(*client.MustRefetch); ok {
			tx.touch(table)
			return refetch(tx, table, b.Handle)
		}
	}
	def, err := loadDef(tx, table)
	if err != nil {
		return err
	}
	if schema != nil && (def == nil || def.source != source || !sameSchema(def, mustDef(table, source, schema))) {
		if def, err = db.ensureTable(tx, table, source, schema); err != nil {
			return err
		}
	}
	if def == nil {
		return fmt.Errorf("localstore: %s: a batch without electric-schema", table)
	}
	moves, err := db.moves(tx, table)
	if err != nil {
		return err
	}
	a := newApplier(tx, def)
	defer a.close()
	var lsn uint64
	var echoes []uint32
	for _, ev := range b.Events {
		switch ev := ev.(type) {
		case *client.Change:
			if err := a.apply(ev); err != nil {
				return err
			}
			if err := moves.change(a, ev); err != nil {
				return fmt.Errorf("localstore: %s: row tags: %w", table, err)
			}
			tx.touch(table)
			if ev.Last {
				echoes = append(echoes, ev.Txids...)
			}
		case *client.Move:
			n, err := moves.move(a, ev)
			if err != nil {
				return err
			}
			if n > 0 {
				tx.touch(table)
			}
		case *client.UpToDate:
			lsn = ev.LSN
		}
	}
	if err := recordEchoes(tx, table, echoes); err != nil {
		return err
	}
	return savePosition(tx, table, b, lsn)
}

func mustDef(table, source string, s client.Schema) *tableDef {
	d, err := newTableDef(table, source, s)
	if err != nil {
		return &tableDef{}
	}
	return d
}

// refetch empties the synced table for a must-refetch and restarts the
// shape's position, in one transaction; the overlay stays.
func refetch(tx *Tx, table, handle string) error {
	def, err := loadDef(tx, table)
	if err != nil || def == nil {
		return err
	}
	if _, err := tx.tx.Exec("DELETE FROM " + def.synced()); err != nil {
		return err
	}
	if _, err := tx.tx.Exec(`DELETE FROM _volt_echo WHERE tbl = ?`, table); err != nil {
		return err
	}
	if _, err := tx.tx.Exec(`DELETE FROM _volt_row_tags WHERE tbl = ?`, table); err != nil {
		return err
	}
	tx.db.forgetMoves(table)
	_, err = tx.tx.Exec(`UPDATE _volt_shapes SET handle = ?, "offset" = '-1', lsn = 0 WHERE tbl = ?`, handle, table)
	return err
}

func savePosition(tx *Tx, table string, b client.Batch, lsn uint64) error {
	if lsn > 0 {
		_, err := tx.tx.Exec(`UPDATE _volt_shapes SET handle = ?, "offset" = ?, lsn = max(lsn, ?) WHERE tbl = ?`, b.Handle, b.Offset, int64(lsn), table)
		return err
	}
	_, err := tx.tx.Exec(`UPDATE _volt_shapes SET handle = ?, "offset" = ? WHERE tbl = ?`, b.Handle, b.Offset, table)
	return err
}

// recordEchoes remembers the txids a shape delivered while writes of
// ours may be in flight (a transaction has a seq): the overlay rows of an
// accepted transaction go once its txid has been seen.
func recordEchoes(tx *Tx, table string, txids []uint32) error {
	if len(txids) == 0 {
		return nil
	}
	var inflight bool
	if err := tx.tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM _volt_txns WHERE seq IS NOT NULL)`).Scan(&inflight); err != nil || !inflight {
		return err
	}
	for _, x := range txids {
		if _, err := tx.tx.Exec(`INSERT OR IGNORE INTO _volt_echo(tbl, txid) VALUES (?, ?)`, table, int64(x)); err != nil {
			return err
		}
	}
	return nil
}

// clearEchoed removes the overlay rows whose last write was accepted and
// has come back through the table's shape: its txid was seen, or the
// shape is up to date past the write's LSN. Transactions echoed in every
// table they wrote are forgotten.
func clearEchoed(tx *Tx) error {
	var n int
	if err := tx.tx.QueryRow(`SELECT count(*) FROM _volt_txns WHERE state = 'accepted'`).Scan(&n); err != nil || n == 0 {
		return err
	}
	defs, err := allDefs(tx)
	if err != nil {
		return err
	}
	for _, d := range defs {
		res, err := tx.tx.Exec(`DELETE FROM `+d.local()+` WHERE write_id IN (SELECT ltx FROM _volt_txns t WHERE `+echoedIn("?1")+`)`, d.name)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k > 0 {
			tx.touch(d.name)
		}
	}
	// The transactions to forget, then each one's outbox range (the
	// outbox is clustered by ltx: no scan of it for orphans).
	gone, err := queryColumn[int64](tx.tx, `SELECT ltx FROM _volt_txns WHERE state = 'accepted' AND NOT EXISTS (
		SELECT 1 FROM _volt_outbox o, _volt_txns t WHERE o.ltx = _volt_txns.ltx AND t.ltx = o.ltx AND NOT (`+echoedIn("o.tbl")+`))`)
	if err != nil {
		return err
	}
	if len(gone) > 0 {
		if err := tx.keepLtx(); err != nil {
			return err
		}
	}
	for _, ltx := range gone {
		if _, err := tx.tx.Exec(`DELETE FROM _volt_outbox WHERE ltx = ?`, ltx); err != nil {
			return err
		}
		if _, err := tx.tx.Exec(`DELETE FROM _volt_txns WHERE ltx = ?`, ltx); err != nil {
			return err
		}
	}
	_, err = tx.tx.Exec(`DELETE FROM _volt_echo WHERE NOT EXISTS (SELECT 1 FROM _volt_txns WHERE seq IS NOT NULL)`)
	return err
}

// echoedIn is the condition "transaction t was accepted and has come back
// through the shape of table tbl".
func echoedIn(tbl string) string {
	return strings.NewReplacer("TBL", tbl).Replace(`t.state = 'accepted' AND (t.txid IN (SELECT txid FROM _volt_echo e WHERE e.tbl = TBL)
		OR (t.lsn > 0 AND t.lsn <= (SELECT lsn FROM _volt_shapes s WHERE s.tbl = TBL)))`)
}
