package shapecache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"sort"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

// Catalog record bodies. Table records are JSON (one per table version);
// add and del records, one per shape, use a compact binary form because a
// restart decodes 100,000 of them: strings are a uvarint length and the
// bytes, numbers uvarints, lists a uvarint count and the items.
const (
	bodyAdd byte = 0x01
	bodyDel byte = 0x02
	// bodyAddSub is an add record of a shape with subqueries
	// (Definition.Subqueries): the same layout as bodyAdd.
	bodyAddSub byte = 0x03
)

var errBadRecord = errors.New("shapecache: bad catalog record")

func encodeRecord(rec catalogRecord) []byte {
	var b []byte
	switch rec.Op {
	case "add":
		if rec.Definition.Subqueries {
			b = append(b, bodyAddSub)
		} else {
			b = append(b, bodyAdd)
		}
		b = binary.AppendUvarint(b, uint64(rec.ID))
		b = appendStr(b, rec.Handle)
		d := rec.Definition
		b = appendStr(b, d.Schema)
		b = appendStr(b, d.Table)
		b = appendStr(b, d.Where)
		keys := make([]string, 0, len(d.Params))
		for k := range d.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendStr(appendStr(b, k), d.Params[k])
		}
		if d.Columns == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(d.Columns)))
			for _, c := range d.Columns {
				b = appendStr(b, c)
			}
		}
		b = appendStr(b, d.Replica)
		b = appendStr(b, d.Log)
		b = appendStr(b, rec.Key)
		si := rec.Snapshot
		b = binary.AppendUvarint(b, si.Xmin)
		b = binary.AppendUvarint(b, si.Xmax)
		b = binary.AppendUvarint(b, si.LSN)
		b = binary.AppendUvarint(b, uint64(len(si.Xip)))
		for _, x := range si.Xip {
			b = binary.AppendUvarint(b, x)
		}
		if rec.Indexed {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(len(rec.Terms)))
		for _, t := range rec.Terms {
			b = appendStr(b, t.Column)
			b = append(b, byte(t.Kind))
			b = appendStr(b, t.Key)
		}
		b = binary.AppendVarint(b, rec.Rows)
		b = binary.AppendVarint(b, rec.Ops)
		// queryable_columns comes last and only when set, so records
		// written before it existed decode unchanged.
		if len(d.Queryable) > 0 {
			b = binary.AppendUvarint(b, uint64(len(d.Queryable)))
			for _, c := range d.Queryable {
				b = appendStr(b, c)
			}
		}
	case "del":
		b = appendStr(append(b, bodyDel), rec.Handle)
	default:
		var err error
		if b, err = json.Marshal(rec); err != nil {
			panic(err) // only plain data
		}
	}
	return b
}

func decodeRecord(body []byte, rec *catalogRecord) error {
	if len(body) == 0 {
		return errBadRecord
	}
	if body[0] == '{' {
		return json.Unmarshal(body, rec)
	}
	r := reader{b: body[1:]}
	switch body[0] {
	case bodyAdd, bodyAddSub:
		rec.Op = "add"
		rec.ID = int(r.uvarint())
		rec.Handle = r.str()
		d := &shape.Definition{Schema: r.str(), Table: r.str(), Where: r.str(), Subqueries: body[0] == bodyAddSub}
		if n := r.count(); n > 0 {
			d.Params = make(map[string]string, n)
			for range n {
				k := r.str()
				d.Params[k] = r.str()
			}
		}
		if r.byte() == 1 {
			d.Columns = make([]string, r.count())
			for i := range d.Columns {
				d.Columns[i] = r.str()
			}
		}
		d.Replica, d.Log = r.str(), r.str()
		rec.Definition = d
		rec.Key = r.str()
		si := &postgres.SnapshotInfo{Snapshot: volt.Snapshot{Xmin: r.uvarint(), Xmax: r.uvarint()}, LSN: r.uvarint()}
		if n := r.count(); n > 0 {
			si.Xip = make([]uint64, n)
			for i := range si.Xip {
				si.Xip[i] = r.uvarint()
			}
		}
		rec.Snapshot = si
		rec.Indexed = r.byte() == 1
		if n := r.count(); n > 0 {
			rec.Terms = make([]where.Term, n)
			for i := range rec.Terms {
				rec.Terms[i] = where.Term{Column: r.str(), Kind: where.KeyKind(r.byte()), Key: r.str()}
			}
		}
		rec.Rows, rec.Ops = r.varint(), r.varint()
		if len(r.b) > 0 {
			d.Queryable = make([]string, r.count())
			for i := range d.Queryable {
				d.Queryable[i] = r.str()
			}
		}
	case bodyDel:
		rec.Op = "del"
		rec.Handle = r.str()
	default:
		return errBadRecord
	}
	if r.bad || len(r.b) != 0 {
		return errBadRecord
	}
	return nil
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// reader decodes the binary record fields; a short or malformed body sets
// bad (and later reads return zero values).
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a list length, bounded by what is left (each item takes at
// least one byte).
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return 0
	}
	return int(n)
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
