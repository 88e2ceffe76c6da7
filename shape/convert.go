package shape

import (
	"errors"
	"fmt"
	"strings"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/where"
)

// ErrSchemaChanged is returned by Convert when a change's relation no longer
// matches the table the shape was created for: the shape must be rotated.
var ErrSchemaChanged = errors.New("table schema changed")

// Message is one shape log message before it is framed with its transaction.
type Message struct {
	Op   uint64 // op_position
	JSON []byte // the message without its closing "headers" additions; see Frame
	kind string
	key  string
	body []byte // `"value":{…}` (+ `,"old_value":{…}`)
	// keyChange is the key_change_to/from header of a PK-changing update.
	keyChangeHeader string
	keyChange       string
	// meta is the tags/removed_tags/active_conditions headers of a shape
	// with subqueries.
	meta []byte
}

// Kind returns the message's operation: "insert", "update" or "delete".
func (m Message) Kind() string { return m.kind }

// Row adapts a replicated row to where.Row.
type row struct {
	s    *Shape
	vals []volt.Value
}

func (r row) Value(col string) (string, bool) {
	i, ok := r.s.t.colIndex[col]
	if !ok || i >= len(r.vals) || r.vals[i].Null {
		return "", false
	}
	return r.vals[i].Text, true
}

// CheckRelation reports ErrSchemaChanged when rel's columns differ from the
// table's (names, types or count) or its OID changed.
func (s *Shape) CheckRelation(rel *volt.Relation) error {
	if rel.ID != s.Table.OID || len(rel.Columns) != len(s.Table.Columns) {
		return ErrSchemaChanged
	}
	for i, c := range rel.Columns {
		t := s.Table.Columns[i]
		if c.Name != t.Name || c.TypeOID != t.TypeOID || c.TypeMod != t.TypeMod {
			return ErrSchemaChanged
		}
	}
	return nil
}

// Matches evaluates the shape's where clause on a row. Evaluation errors
// (e.g. division by zero) count as no match, as a failing SELECT would
// not return the row.
func (s *Shape) Matches(vals []volt.Value) bool {
	ok, _ := s.match(vals)
	return ok
}

// match is Matches, except that a row too costly to evaluate (an error
// matching where.ErrTooCostly) is an error: Postgres may match it, so the
// shape cannot be continued.
func (s *Shape) match(vals []volt.Value) (bool, error) {
	if vals == nil {
		return false, nil
	}
	f, err := s.Filter()
	if err != nil {
		return false, nil
	}
	if f == nil {
		return true, nil
	}
	ok, err := f.Matches(row{s, vals})
	if errors.Is(err, where.ErrTooCostly) {
		return false, err
	}
	return err == nil && ok, nil
}

// Convert turns one change into this shape's messages (zero, one or two);
// op is the change's op_position (2 × its index in the transaction). A
// row too costly to evaluate fails it with an error matching
// where.ErrTooCostly.
func (s *Shape) Convert(ch *volt.Change, op uint64) ([]Message, error) {
	if err := s.CheckRelation(ch.Relation); err != nil {
		return nil, err
	}
	if _, err := s.Filter(); err != nil {
		return nil, fmt.Errorf("%w: where clause no longer compiles: %v", ErrSchemaChanged, err)
	}
	switch ch.Kind {
	case volt.ChangeInsert:
		in, err := s.match(ch.New)
		if err != nil || !in {
			return nil, err
		}
		return []Message{s.insert(ch.New, op)}, nil
	case volt.ChangeDelete:
		in, err := s.match(ch.Old)
		if err != nil || !in {
			return nil, err
		}
		return []Message{s.delete(ch.Old, op)}, nil
	case volt.ChangeUpdate:
		oldIn, err := s.match(ch.Old)
		if err != nil {
			return nil, err
		}
		newIn, err := s.match(ch.New)
		if err != nil {
			return nil, err
		}
		return s.update(ch, op, oldIn, newIn), nil
	}
	return nil, nil
}

func (s *Shape) update(ch *volt.Change, op uint64, oldIn, newIn bool) []Message {
	switch {
	case oldIn && newIn:
		oldKey, newKey := s.rowKey(ch.Old), s.rowKey(ch.New)
		if oldKey != newKey {
			del, ins := s.delete(ch.Old, op), s.insert(ch.New, op+1)
			del.keyChangeHeader, del.keyChange = "key_change_to", newKey
			ins.keyChangeHeader, ins.keyChange = "key_change_from", oldKey
			return []Message{del, ins}
		}
		if m, ok := s.changed(ch.Old, ch.New, newKey, op); ok {
			return []Message{m}
		}
	case oldIn:
		return []Message{s.delete(ch.Old, op)}
	case newIn:
		return []Message{s.insert(ch.New, op)}
	}
	return nil
}

func (s *Shape) insert(vals []volt.Value, op uint64) Message {
	body := append([]byte(`"value":`), s.appendRow(nil, vals, s.selected)...)
	return Message{Op: op, kind: "insert", key: s.rowKey(vals), body: body}
}

func (s *Shape) delete(vals []volt.Value, op uint64) Message {
	cols := s.selected
	if s.Def.Replica != ReplicaFull {
		cols = s.keyMask()
	}
	body := append([]byte(`"value":`), s.appendRow(nil, vals, cols)...)
	return Message{Op: op, kind: "delete", key: s.rowKey(vals), body: body}
}

// changed builds an update message, or reports false when no selected
// column changed.
func (s *Shape) changed(old, new []volt.Value, key string, op uint64) (Message, bool) {
	diff := make([]bool, len(s.Table.Columns))
	any := false
	for _, i := range s.Selected {
		if old[i] != new[i] {
			diff[i], any = true, true
		}
	}
	if !any {
		return Message{}, false
	}
	var body []byte
	if s.Def.Replica == ReplicaFull {
		body = append([]byte(`"value":`), s.appendRow(nil, new, s.selected)...)
		body = append(body, `,"old_value":`...)
		body = s.appendRow(body, old, diff)
	} else {
		for _, k := range s.KeyCols {
			diff[k] = true
		}
		body = append([]byte(`"value":`), s.appendRow(nil, new, diff)...)
	}
	return Message{Op: op, kind: "update", key: key, body: body}, true
}

func (s *Shape) keyMask() []bool {
	m := make([]bool, len(s.Table.Columns))
	for _, k := range s.KeyCols {
		m[k] = true
	}
	return m
}

// appendRow appends a JSON object of the columns in mask.
func (s *Shape) appendRow(dst []byte, vals []volt.Value, mask []bool) []byte {
	dst = append(dst, '{')
	first := true
	for i, c := range s.Table.Columns {
		if !mask[i] {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, c.Name)
		dst = append(dst, ':')
		if vals[i].Null {
			dst = append(dst, "null"...)
		} else {
			dst = appendString(dst, vals[i].Text)
		}
	}
	return append(dst, '}')
}

// rowKey builds the message key: `"schema"."table"/"v1"/"v2"`.
func (s *Shape) rowKey(vals []volt.Value) string {
	var b strings.Builder
	b.WriteString(s.t.keyPrefix)
	for _, k := range s.KeyCols {
		if vals[k].Null {
			b.WriteString("/_")
			continue
		}
		b.WriteString(`/"`)
		b.WriteString(strings.ReplaceAll(vals[k].Text, "/", "//"))
		b.WriteByte('"')
	}
	return b.String()
}

// Frame renders m as a live-log message of the transaction (lsn, txid),
// marking it last when it closes the transaction for this shape.
func (s *Shape) Frame(m Message, lsn uint64, xid uint32, last bool) []byte {
	dst := make([]byte, 0, len(m.body)+len(m.key)+160)
	dst = append(dst, `{"key":`...)
	dst = appendString(dst, m.key)
	dst = append(dst, ',')
	dst = append(dst, m.body...)
	dst = append(dst, `,"headers":{"operation":"`...)
	dst = append(dst, m.kind...)
	dst = append(dst, `","relation":`...)
	dst = append(dst, s.t.relation...)
	dst = append(dst, m.meta...)
	dst = append(dst, `,"lsn":`...)
	dst = appendQuotedUint(dst, lsn)
	dst = append(dst, `,"op_position":`...)
	dst = appendUint(dst, m.Op)
	dst = append(dst, `,"txids":[`...)
	dst = appendUint(dst, uint64(xid))
	dst = append(dst, ']')
	if m.keyChangeHeader != "" {
		dst = append(dst, `,"`...)
		dst = append(dst, m.keyChangeHeader...)
		dst = append(dst, `":`...)
		dst = appendString(dst, m.keyChange)
	}
	if last {
		dst = append(dst, `,"last":true`...)
	}
	return append(dst, "}}"...)
}

// SnapshotRow renders one snapshot row (the selected columns' text values in
// table order, nil for NULL) as an insert message without log headers.
func (s *Shape) SnapshotRow(raw [][]byte) []byte {
	return s.SnapshotEncoder().Append(make([]byte, 0, 128), raw)
}

// SnapshotEncoder renders snapshot rows of one shape straight from their
// text values into a caller's buffer: the JSON pieces that do not depend
// on the row are built once, and no value is copied but into the output.
type SnapshotEncoder struct {
	head  []byte   // `{"key":"` and the key prefix, escaped as in a JSON string
	keys  []int    // for each key column its index in the row (-1: not selected)
	names [][]byte // for each selected column `"name":`, with a leading comma after the first
	bools []bool   // the selected column is a boolean (t/f spelled true/false)
	tail  []byte   // `},"headers":{"operation":"insert","relation":…}}`
}

// SnapshotEncoder returns the shape's snapshot row encoder (Append only
// reads it, so goroutines may share one).
func (s *Shape) SnapshotEncoder() *SnapshotEncoder {
	enc := &SnapshotEncoder{}
	enc.head = append([]byte(`{"key":`), appendString(nil, s.t.keyPrefix)...)
	enc.head = enc.head[:len(enc.head)-1] // the key goes on inside the string
	for _, k := range s.KeyCols {
		at := -1
		for j, i := range s.Selected {
			if i == k {
				at = j
			}
		}
		enc.keys = append(enc.keys, at)
	}
	for j, i := range s.Selected {
		c := s.Table.Columns[i]
		var name []byte
		if j > 0 {
			name = append(name, ',')
		}
		name = append(appendString(name, c.Name), ':')
		enc.names = append(enc.names, name)
		enc.bools = append(enc.bools, c.TypeOID == boolOID && c.Dims == 0)
	}
	enc.tail = append([]byte(`},"headers":{"operation":"insert","relation":`), s.t.relation...)
	enc.tail = append(enc.tail, "}}"...)
	return enc
}

// Append appends the insert message of one row (raw[k] is the text value
// of the k-th selected column, nil for NULL) to dst. The message is the
// one SnapshotRow built from the same values before: key, value and
// headers in that order.
func (enc *SnapshotEncoder) Append(dst []byte, raw [][]byte) []byte {
	dst = append(dst, enc.head...)
	for _, k := range enc.keys {
		if k < 0 || raw[k] == nil {
			dst = append(dst, "/_"...)
			continue
		}
		dst = append(dst, `/\"`...)
		dst = appendBoolOr(dst, raw[k], enc.bools[k], true)
		dst = append(dst, `\"`...)
	}
	dst = append(dst, `","value":{`...)
	for k, name := range enc.names {
		dst = append(dst, name...)
		v := raw[k]
		if v == nil {
			dst = append(dst, "null"...)
			continue
		}
		dst = append(dst, '"')
		dst = appendBoolOr(dst, v, enc.bools[k], false)
		dst = append(dst, '"')
	}
	return append(dst, enc.tail...)
}

// appendBoolOr appends v escaped by appendJSONBytes, or, for a boolean
// column, t and f as the live log spells them (normaliseBool).
func appendBoolOr(dst, v []byte, isBool, slash bool) []byte {
	if isBool && len(v) == 1 {
		switch v[0] {
		case 't':
			return append(dst, "true"...)
		case 'f':
			return append(dst, "false"...)
		}
	}
	return appendJSONBytes(dst, v, slash)
}

const boolOID = 16

func normaliseBool(s string) string {
	switch s {
	case "t":
		return "true"
	case "f":
		return "false"
	}
	return s
}

// rawValues places a snapshot row's text values (raw[k] is column cols[k],
// nil for NULL) in table order, with booleans as the live log spells them.
func (s *Shape) rawValues(raw [][]byte, cols []int) []volt.Value {
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
	return vals
}
