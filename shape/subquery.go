package shape

import (
	"errors"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/where"
)

// This file holds what shapes with subqueries in their where clause
// (`col IN (SELECT c FROM t …)`, subqueries.md) need: the compiled plan,
// conversion of the shape's own table's changes with tags,
// removed_tags and active_conditions against the current views, and
// snapshot rows with that metadata.

// NewWithSubqueries is Registry.New, except that the where clause may
// contain subqueries; tables resolves the tables they name. A clause
// without subqueries gives an ordinary shape. A table the lookup refuses
// is a *FieldError on "table".
func (r *Registry) NewWithSubqueries(def Definition, table *volt.Table, tables where.Tables) (*Shape, error) {
	return newShapeWithSubqueries(def, r.intern(table), tables)
}

// NewWithSubqueries is New for a where clause that may contain subqueries
// (see Registry.NewWithSubqueries).
func NewWithSubqueries(def Definition, table *volt.Table, tables where.Tables) (*Shape, error) {
	return newShapeWithSubqueries(def, newTableInfo(table), tables)
}

func newShapeWithSubqueries(def Definition, t *tableInfo, tables where.Tables) (*Shape, error) {
	if def.Where == "" {
		return newShape(def, t)
	}
	plan, err := where.ParsePlan(def.Where, t.whereCols, def.Params, tables)
	if err != nil {
		var te *where.TableError
		if errors.As(err, &te) {
			return nil, &FieldError{Field: "table", Message: te.Error()}
		}
		return nil, &FieldError{Field: "where", Message: err.Error()}
	}
	if len(plan.Deps) == 0 {
		return newShape(def, t)
	}
	def.Subqueries = true
	s, err := bind(def, t)
	if err != nil {
		return nil, err
	}
	s.plan = plan
	s.compile.Do(func() {})
	s.Key = s.canonicalKey()
	return s, nil
}

// Plan returns the compiled clause of a shape with subqueries, nil for
// other shapes (whose clause is Filter's).
func (s *Shape) Plan() *where.Plan { return s.plan }

// Row adapts a replicated row of the shape's table to where.Row.
func (s *Shape) Row(vals []volt.Value) where.Row { return row{s, vals} }

// RowKey returns the message key of a row of the shape's table.
func (s *Shape) RowKey(vals []volt.Value) string { return s.rowKey(vals) }

// ColumnIndex returns the index in Table.Columns of the named column.
func (s *Shape) ColumnIndex(name string) (int, bool) {
	i, ok := s.t.colIndex[name]
	return i, ok
}

// WhereColumns returns the table's columns as the where package types
// them.
func (s *Shape) WhereColumns() []where.Column { return s.t.whereCols }

// TagPrefix is the prefix of a shape's tag slot hashes (subqueries.md
// §4.1: stack and handle).
func TagPrefix(handle string) string { return "volt" + handle }

// subMeta computes a row's metadata; an evaluation error counts the row
// out, but a row too costly to evaluate is an error.
func (s *Shape) subMeta(vals []volt.Value, views []*where.View, prefix string) (where.RowMeta, error) {
	if vals == nil {
		return where.RowMeta{}, nil
	}
	m, err := s.plan.Meta(row{s, vals}, views, prefix)
	if errors.Is(err, where.ErrTooCostly) {
		return where.RowMeta{}, err
	}
	if m.ActiveConditions == nil {
		return where.RowMeta{}, nil
	}
	return m, nil
}

// ConvertWithViews is Convert for a shape with subqueries: rows are in
// the shape when their clause holds with views (one per dependency), and
// every message carries tags and active_conditions (updates also
// removed_tags, and are emitted even when no selected column changed;
// subqueries.md §6). prefix is TagPrefix of the shape's handle.
//
// With upsert, an update of a row in the shape before and after is an
// insert of the whole row (with removed_tags): for a transaction that a
// move-in's rows already hold, whose rows the client may not have.
func (s *Shape) ConvertWithViews(ch *volt.Change, op uint64, views []*where.View, prefix string, upsert bool) ([]Message, error) {
	if err := s.CheckRelation(ch.Relation); err != nil {
		return nil, err
	}
	switch ch.Kind {
	case volt.ChangeInsert:
		m, err := s.subMeta(ch.New, views, prefix)
		if err != nil || !m.Included {
			return nil, err
		}
		msg := s.insert(ch.New, op)
		msg.meta = appendMeta(nil, m.Tags, nil, m.ActiveConditions)
		return []Message{msg}, nil
	case volt.ChangeDelete:
		m, err := s.subMeta(ch.Old, views, prefix)
		if err != nil || !m.Included {
			return nil, err
		}
		msg := s.delete(ch.Old, op)
		msg.meta = appendMeta(nil, m.Tags, nil, m.ActiveConditions)
		return []Message{msg}, nil
	case volt.ChangeUpdate:
		om, err := s.subMeta(ch.Old, views, prefix)
		if err != nil {
			return nil, err
		}
		nm, err := s.subMeta(ch.New, views, prefix)
		if err != nil {
			return nil, err
		}
		return s.updateWithMeta(ch, op, om, nm, upsert), nil
	}
	return nil, nil
}

func (s *Shape) updateWithMeta(ch *volt.Change, op uint64, om, nm where.RowMeta, upsert bool) []Message {
	switch {
	case om.Included && nm.Included:
		removed := tagsMinus(om.Tags, nm.Tags)
		oldKey, newKey := s.rowKey(ch.Old), s.rowKey(ch.New)
		if oldKey != newKey {
			del, ins := s.delete(ch.Old, op), s.insert(ch.New, op+1)
			del.keyChangeHeader, del.keyChange = "key_change_to", newKey
			ins.keyChangeHeader, ins.keyChange = "key_change_from", oldKey
			del.meta = appendMeta(nil, append(append([]string(nil), nm.Tags...), removed...), nil, om.ActiveConditions)
			ins.meta = appendMeta(nil, nm.Tags, nil, nm.ActiveConditions)
			return []Message{del, ins}
		}
		if removed == nil {
			removed = []string{} // always present on updates
		}
		if upsert {
			m := s.insert(ch.New, op)
			m.meta = appendMeta(nil, nm.Tags, removed, nm.ActiveConditions)
			return []Message{m}
		}
		m, ok := s.changed(ch.Old, ch.New, newKey, op)
		if !ok {
			// No selected column changed, but the conditions may have:
			// the update carries the key only.
			m = Message{Op: op, kind: "update", key: newKey, body: append([]byte(`"value":`), s.appendRow(nil, ch.New, s.keyMask())...)}
		}
		m.meta = appendMeta(nil, nm.Tags, removed, nm.ActiveConditions)
		return []Message{m}
	case om.Included:
		m := s.delete(ch.Old, op)
		m.meta = appendMeta(nil, om.Tags, nil, om.ActiveConditions)
		return []Message{m}
	case nm.Included:
		m := s.insert(ch.New, op)
		m.meta = appendMeta(nil, nm.Tags, nil, nm.ActiveConditions)
		return []Message{m}
	}
	return nil
}

// tagsMinus returns the tags of a not in b (list difference).
func tagsMinus(a, b []string) []string {
	var out []string
	for _, t := range a {
		found := false
		for _, u := range b {
			found = found || t == u
		}
		if !found {
			out = append(out, t)
		}
	}
	return out
}

// appendMeta appends `,"tags":[…]` (and `,"removed_tags":[…]` when removed
// is not nil) and `,"active_conditions":[…]`.
func appendMeta(dst []byte, tags, removed []string, conds []bool) []byte {
	dst = append(dst, `,"tags":`...)
	dst = appendStrings(dst, tags)
	if removed != nil {
		dst = append(dst, `,"removed_tags":`...)
		dst = appendStrings(dst, removed)
	}
	dst = append(dst, `,"active_conditions":[`...)
	for i, c := range conds {
		if i > 0 {
			dst = append(dst, ',')
		}
		if c {
			dst = append(dst, "true"...)
		} else {
			dst = append(dst, "false"...)
		}
	}
	return append(dst, ']')
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, t := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, t)
	}
	return append(dst, ']')
}

// SnapshotColumns returns the columns a snapshot of a shape with
// subqueries reads: the selected ones, then the other columns the clause
// references (for the row metadata), as indexes into Table.Columns.
func (s *Shape) SnapshotColumns() []int {
	cols := append([]int(nil), s.Selected...)
	if s.plan == nil {
		return cols
	}
	for _, name := range s.plan.Columns() {
		i := s.t.colIndex[name]
		if !s.selected[i] {
			cols = append(cols, i)
		}
	}
	return cols
}

// SnapshotRowWithViews renders one snapshot row of a shape with
// subqueries, raw holding the text of SnapshotColumns (nil for NULL), with
// its tags and active conditions against views. It also reports whether
// the row is in the shape by those views (the snapshot's SQL decides;
// this is a consistency check).
func (s *Shape) SnapshotRowWithViews(raw [][]byte, views []*where.View, prefix string) ([]byte, bool, error) {
	return s.rowWithViews(raw, views, prefix, false)
}

// MoveInRow is SnapshotRowWithViews for a move-in query's row: its
// headers also carry "is_move_in":true (subqueries.md §7.4).
func (s *Shape) MoveInRow(raw [][]byte, views []*where.View, prefix string) ([]byte, bool, error) {
	return s.rowWithViews(raw, views, prefix, true)
}

func (s *Shape) rowWithViews(raw [][]byte, views []*where.View, prefix string, moveIn bool) ([]byte, bool, error) {
	vals := s.rawValues(raw, s.SnapshotColumns())
	m, err := s.subMeta(vals, views, prefix)
	if err != nil {
		return nil, false, err
	}
	if m.ActiveConditions == nil {
		m.ActiveConditions = make([]bool, len(s.plan.Positions))
		m.Tags = s.plan.Tags(row{s, vals}, prefix)
	}
	dst := make([]byte, 0, 256)
	dst = append(dst, `{"key":`...)
	dst = appendString(dst, s.rowKey(vals))
	dst = append(dst, `,"value":`...)
	dst = s.appendRow(dst, vals, s.selected)
	dst = append(dst, `,"headers":{"operation":"insert","relation":`...)
	dst = append(dst, s.t.relation...)
	if moveIn {
		dst = append(dst, `,"is_move_in":true`...)
	}
	dst = appendMeta(dst, m.Tags, nil, m.ActiveConditions)
	return append(dst, "}}"...), m.Included, nil
}

// SubsetConditionColumns returns the SQL of the extra columns a subset
// query of a shape with subqueries reads after SnapshotColumns: each
// position's active condition, live (ConditionSQL), in position order.
func (s *Shape) SubsetConditionColumns() []string {
	out := make([]string, len(s.plan.Positions))
	for q := range s.plan.Positions {
		out[q] = s.plan.ConditionSQL(q, nil)
	}
	return out
}

// SetTagPrefix sets the prefix of the shape's tags in subset rows
// (TagPrefix of its handle).
func (s *Shape) SetTagPrefix(prefix string) { s.tagPrefix.Store(&prefix) }

// subqueryRow renders a subset row of a shape with subqueries: raw holds
// SnapshotColumns then SubsetConditionColumns ("t"/"f"); tags are
// computed from the row.
func (s *Shape) subqueryRow(raw [][]byte, mark int64) []byte {
	cols := s.SnapshotColumns()
	vals := make([]volt.Value, len(s.Table.Columns))
	for k, i := range cols {
		if raw[k] == nil {
			vals[i].Null = true
			continue
		}
		vals[i].Text = string(raw[k])
		if s.Table.Columns[i].TypeOID == boolOID && s.Table.Columns[i].Dims == 0 {
			vals[i].Text = normaliseBool(vals[i].Text)
		}
	}
	conds := make([]bool, len(s.plan.Positions))
	for q := range conds {
		if k := len(cols) + q; k < len(raw) && raw[k] != nil {
			conds[q] = string(raw[k]) == "t" || string(raw[k]) == "true"
		}
	}
	prefix := ""
	if p := s.tagPrefix.Load(); p != nil {
		prefix = *p
	}
	dst := make([]byte, 0, 256)
	dst = append(dst, `{"key":`...)
	dst = appendString(dst, s.rowKey(vals))
	dst = append(dst, `,"value":`...)
	dst = s.appendRow(dst, vals, s.selected)
	dst = append(dst, `,"headers":{"operation":"insert","relation":`...)
	dst = append(dst, s.t.relation...)
	dst = appendMeta(dst, s.plan.Tags(row{s, vals}, prefix), nil, conds)
	dst = append(dst, `,"snapshot_mark":`...)
	dst = appendUint(dst, uint64(mark))
	return append(dst, "}}"...)
}
