package localstore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// rowTagsDDL: the tags and active conditions of the synced rows of shapes
// whose where clause has subqueries, by local table and row key, with the
// row's primary key (a JSON array, see encodePK) so that a move-out can
// delete it. Sync's MoveTracker is rebuilt from it after a restart. Rows
// of shapes without subqueries carry no tags and have no row here.
const rowTagsDDL = `CREATE TABLE IF NOT EXISTS _volt_row_tags (tbl TEXT NOT NULL, key TEXT NOT NULL, pk TEXT NOT NULL,
		tags TEXT NOT NULL, conds TEXT, PRIMARY KEY (tbl, key)) WITHOUT ROWID`

// moveState applies the moves of one table's shape: its tracker mirrors
// _volt_row_tags. It is loaded from there in the first batch after Sync
// starts or a batch failed, and used under db.wmu.
type moveState struct {
	tracker client.MoveTracker
}

// moves returns table's move state, loading it in tx when needed.
func (db *DB) moves(tx *Tx, table string) (*moveState, error) {
	if m := db.moveStates[table]; m != nil {
		return m, nil
	}
	m := &moveState{}
	rows, err := tx.tx.Query(`SELECT key, tags, conds FROM _volt_row_tags WHERE tbl = ?`, table)
	if err != nil {
		return nil, fmt.Errorf("localstore: %s: load row tags: %w", table, err)
	}
	defer rows.Close()
	var changes []*client.Change
	for rows.Next() {
		var key, tags string
		var conds *string
		if err := rows.Scan(&key, &tags, &conds); err != nil {
			return nil, err
		}
		c := &client.Change{Key: key, Operation: volt.OpInsert}
		if err := json.Unmarshal([]byte(tags), &c.Tags); err != nil {
			return nil, fmt.Errorf("localstore: %s: row tags of %s: %w", table, key, err)
		}
		if conds != nil {
			if err := json.Unmarshal([]byte(*conds), &c.ActiveConditions); err != nil {
				return nil, fmt.Errorf("localstore: %s: active conditions of %s: %w", table, key, err)
			}
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The tracker learns the disjuncts from the first row with tags: a
	// row with all of its tags (one per disjunct) goes first.
	slices.SortStableFunc(changes, func(a, b *client.Change) int { return len(b.Tags) - len(a.Tags) })
	for _, c := range changes {
		m.tracker.Change(c)
	}
	if db.moveStates == nil {
		db.moveStates = map[string]*moveState{}
	}
	db.moveStates[table] = m
	return m, nil
}

// forgetMoves drops table's move state in memory: the next batch loads it
// from the store again.
func (db *DB) forgetMoves(table string) {
	delete(db.moveStates, table)
}

// change records c's tags and active conditions. Changes of a shape
// without subqueries carry none and cost a map lookup.
func (m *moveState) change(a *applier, c *client.Change) error {
	if len(c.Tags) == 0 && len(c.RemovedTags) == 0 && len(c.ActiveConditions) == 0 {
		if _, _, known := m.tracker.Row(c.Key); !known {
			return nil
		}
		if c.Operation != volt.OpDelete {
			return nil
		}
	}
	m.tracker.Change(c)
	var pk []any
	if c.Operation != volt.OpDelete {
		for _, col := range a.def.pk() {
			pk = append(pk, toSQL(col.col, c.Value[col.name]))
		}
	}
	return m.save(a, c.Key, pk)
}

// move applies a move event: the rows a move-out leaves in no disjunct
// are deleted from the synced table (as a synced delete: the overlay
// stays), the others keep their new active conditions.
func (m *moveState) move(a *applier, mv *client.Move) (deleted int, err error) {
	matched := m.tracker.Matching(mv)
	gone := m.tracker.Move(mv)
	for _, key := range matched {
		if _, found := slices.BinarySearch(gone, key); found {
			continue
		}
		if err := m.save(a, key, nil); err != nil {
			return deleted, err
		}
	}
	for _, key := range gone {
		var enc string
		err := a.tx.tx.QueryRow(`SELECT pk FROM _volt_row_tags WHERE tbl = ? AND key = ?`, a.def.name, key).Scan(&enc)
		if err != nil {
			return deleted, fmt.Errorf("localstore: %s: move-out of %s: %w", a.def.name, key, err)
		}
		pk, err := decodePK(enc)
		if err != nil {
			return deleted, fmt.Errorf("localstore: %s: move-out of %s: %w", a.def.name, key, err)
		}
		if err := a.deletePK(pk); err != nil {
			return deleted, err
		}
		if _, err := a.tx.tx.Exec(`DELETE FROM _volt_row_tags WHERE tbl = ? AND key = ?`, a.def.name, key); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, nil
}

// save writes the tracker's state of key to _volt_row_tags; pk is the
// row's primary key when known (an insert or update), nil to keep the
// stored one.
func (m *moveState) save(a *applier, key string, pk []any) error {
	tags, conds, ok := m.tracker.Row(key)
	if !ok {
		_, err := a.tx.tx.Exec(`DELETE FROM _volt_row_tags WHERE tbl = ? AND key = ?`, a.def.name, key)
		return err
	}
	tj, err := json.Marshal(tags)
	if err != nil {
		return err
	}
	var cj any
	if conds != nil {
		b, err := json.Marshal(conds)
		if err != nil {
			return err
		}
		cj = string(b)
	}
	if pk == nil {
		_, err = a.tx.tx.Exec(`UPDATE _volt_row_tags SET tags = ?, conds = ? WHERE tbl = ? AND key = ?`, string(tj), cj, a.def.name, key)
		return err
	}
	enc, err := encodePK(pk)
	if err != nil {
		return err
	}
	_, err = a.tx.tx.Exec(`INSERT INTO _volt_row_tags(tbl, key, pk, tags, conds) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET pk = excluded.pk, tags = excluded.tags, conds = excluded.conds`,
		a.def.name, key, enc, string(tj), cj)
	return err
}

// encodePK encodes a primary key's SQLite values as a JSON array; a BLOB
// is {"x": hex}.
func encodePK(pk []any) (string, error) {
	vals := make([]any, len(pk))
	for i, v := range pk {
		if b, ok := v.([]byte); ok {
			vals[i] = map[string]string{"x": hex.EncodeToString(b)}
			continue
		}
		vals[i] = v
	}
	b, err := json.Marshal(vals)
	return string(b), err
}

func decodePK(s string) ([]any, error) {
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var vals []any
	if err := d.Decode(&vals); err != nil {
		return nil, fmt.Errorf("primary key %s: %w", s, err)
	}
	for i, v := range vals {
		switch v := v.(type) {
		case json.Number:
			if n, err := v.Int64(); err == nil {
				vals[i] = n
			} else if f, err := v.Float64(); err == nil {
				vals[i] = f
			} else {
				return nil, fmt.Errorf("primary key %s: %w", s, err)
			}
		case map[string]any:
			x, _ := v["x"].(string)
			b, err := hex.DecodeString(x)
			if err != nil {
				return nil, fmt.Errorf("primary key %s: %w", s, err)
			}
			vals[i] = b
		}
	}
	return vals, nil
}
