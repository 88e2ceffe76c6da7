package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
)

// This file decodes the pgoutput logical replication protocol, version 1
// (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html),
// into volt.Transactions. It does no I/O: the Reader feeds it the payload of
// every XLogData message.

// ErrReplicaIdentityNotFull is wrapped by the error returned when an UPDATE or
// DELETE arrives without the complete old row, i.e. the table's REPLICA
// IDENTITY is not FULL.
var ErrReplicaIdentityNotFull = errors.New("replica identity is not FULL")

// DecodeError reports a pgoutput message that could not be decoded. It is
// never retryable: the same message would arrive again after a reconnect.
type DecodeError struct {
	// Type is the message type byte ('B', 'R', 'I', …), or 0 for an empty message.
	Type byte
	Err  error
}

func (e *DecodeError) Error() string {
	if e.Type == 0 {
		return "decode pgoutput message: " + e.Err.Error()
	}
	return fmt.Sprintf("decode pgoutput %q message: %v", e.Type, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// pgoutput message types (proto_version 1).
const (
	pgoutBegin    = 'B'
	pgoutCommit   = 'C'
	pgoutOrigin   = 'O'
	pgoutRelation = 'R'
	pgoutType     = 'Y'
	pgoutInsert   = 'I'
	pgoutUpdate   = 'U'
	pgoutDelete   = 'D'
	pgoutTruncate = 'T'
	pgoutMessage  = 'M'
)

// Tuple column kinds.
const (
	pgoutNull      = 'n'
	pgoutUnchanged = 'u'
	pgoutTextValue = 't'
	pgoutBinary    = 'b'
)

// pgoutBoolOID is pg_type.oid of boolean; its scalar values are normalised to
// "true"/"false", the form Electric's snapshots (bool::text) show.
const pgoutBoolOID = 16

// pgoutEpoch is the origin of pgoutput timestamps (microseconds since 2000-01-01 UTC).
var pgoutEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Decoder turns a stream of pgoutput messages into transactions. It keeps
// the relations announced by Relation messages and the transaction being
// assembled. A Decoder is not safe for concurrent use.
type Decoder struct {
	relations map[uint32]*volt.Relation
	tx        *volt.Transaction
}

// NewDecoder returns a Decoder with an empty relation cache.
func NewDecoder() *Decoder {
	return &Decoder{relations: make(map[uint32]*volt.Relation)}
}

// InTransaction reports whether a BEGIN has been decoded whose COMMIT has not.
func (d *Decoder) InTransaction() bool { return d.tx != nil }

// Relation returns the cached relation with the given OID, or nil.
func (d *Decoder) Relation(id uint32) *volt.Relation { return d.relations[id] }

// Reset drops a partially decoded transaction (after the stream broke
// mid-transaction). The relation cache is kept: the server announces every
// relation again before its first use on a new stream anyway.
func (d *Decoder) Reset() { d.tx = nil }

// Decode consumes one pgoutput message. It returns the transaction when msg
// is its COMMIT and nil otherwise. Origin, Type and logical decoding Message
// messages are ignored. Errors are *DecodeError; after an error the
// transaction in progress is dropped.
func (d *Decoder) Decode(msg []byte) (*volt.Transaction, error) {
	if len(msg) == 0 {
		return nil, &DecodeError{Err: errors.New("empty message")}
	}
	tx, err := d.decode(msg[0], &pgoutBuf{b: msg[1:]})
	if err != nil {
		d.tx = nil
		return nil, &DecodeError{Type: msg[0], Err: err}
	}
	return tx, nil
}

func (d *Decoder) decode(typ byte, b *pgoutBuf) (*volt.Transaction, error) {
	switch typ {
	case pgoutBegin:
		return nil, d.decodeBegin(b)
	case pgoutCommit:
		return d.decodeCommit(b)
	case pgoutRelation:
		return nil, d.decodeRelation(b)
	case pgoutInsert:
		return nil, d.decodeInsert(b)
	case pgoutUpdate:
		return nil, d.decodeUpdate(b)
	case pgoutDelete:
		return nil, d.decodeDelete(b)
	case pgoutTruncate:
		return nil, d.decodeTruncate(b)
	case pgoutOrigin, pgoutType, pgoutMessage:
		return nil, nil
	}
	return nil, fmt.Errorf("unknown message type %q", typ)
}

// decodeBegin: Int64 final LSN, Int64 commit timestamp, Int32 xid.
func (d *Decoder) decodeBegin(b *pgoutBuf) error {
	if d.tx != nil {
		return fmt.Errorf("BEGIN inside transaction %d", d.tx.Xid)
	}
	final, ts, xid := b.u64(), b.u64(), b.u32()
	if err := b.done(); err != nil {
		return err
	}
	d.tx = &volt.Transaction{Xid: xid, CommitLSN: final, CommitTime: pgoutTime(ts)}
	return nil
}

// decodeCommit: Int8 flags, Int64 commit LSN, Int64 end LSN, Int64 commit timestamp.
func (d *Decoder) decodeCommit(b *pgoutBuf) (*volt.Transaction, error) {
	if d.tx == nil {
		return nil, errors.New("COMMIT outside a transaction")
	}
	_ = b.u8()
	commit, end, ts := b.u64(), b.u64(), b.u64()
	if err := b.done(); err != nil {
		return nil, err
	}
	if commit != d.tx.CommitLSN {
		return nil, fmt.Errorf("COMMIT at LSN %d of a transaction that BEGIN announced at %d", commit, d.tx.CommitLSN)
	}
	tx := d.tx
	d.tx = nil
	tx.EndLSN = end
	tx.CommitTime = pgoutTime(ts)
	return tx, nil
}

// decodeRelation: Int32 OID, String namespace, String name, Int8 replica
// identity, Int16 column count, then per column Int8 flags, String name,
// Int32 type OID, Int32 type modifier. An unchanged re-announcement keeps
// the cached *volt.Relation, so callers may compare relation pointers.
func (d *Decoder) decodeRelation(b *pgoutBuf) error {
	rel := &volt.Relation{ID: b.u32(), Schema: b.str(), Name: b.str()}
	_ = b.u8() // replica identity setting; UPDATE/DELETE show whether the old row is complete
	n := int(b.u16())
	if b.err == nil && n > b.remaining()/10 {
		return fmt.Errorf("relation %d: %d columns do not fit in %d bytes", rel.ID, n, b.remaining())
	}
	rel.Columns = make([]volt.RelationColumn, 0, n)
	for i := 0; i < n && b.err == nil; i++ {
		flags := b.u8()
		c := volt.RelationColumn{Name: b.str(), TypeOID: b.u32(), TypeMod: int32(b.u32()), Key: flags&1 != 0}
		rel.Columns = append(rel.Columns, c)
	}
	if err := b.done(); err != nil {
		return err
	}
	if rel.Schema == "" {
		rel.Schema = "pg_catalog" // pgoutput sends an empty namespace for pg_catalog
	}
	if old := d.relations[rel.ID]; old != nil && pgoutSameRelation(old, rel) {
		return nil
	}
	d.relations[rel.ID] = rel
	return nil
}

func pgoutSameRelation(a, b *volt.Relation) bool {
	if a.ID != b.ID || a.Schema != b.Schema || a.Name != b.Name || len(a.Columns) != len(b.Columns) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i] != b.Columns[i] {
			return false
		}
	}
	return true
}

// decodeInsert: Int32 relation OID, Byte1 'N', TupleData.
func (d *Decoder) decodeInsert(b *pgoutBuf) error {
	rel, err := d.changeRelation(b)
	if err != nil {
		return err
	}
	if tag := b.u8(); b.err == nil && tag != 'N' {
		return fmt.Errorf("INSERT into %s: expected new tuple 'N', got %q", pgoutRelName(rel), tag)
	}
	row, unchanged, err := pgoutTuple(b, rel)
	if err != nil {
		return fmt.Errorf("INSERT into %s: %w", pgoutRelName(rel), err)
	}
	if unchanged != nil {
		return fmt.Errorf("INSERT into %s: unchanged TOAST value in a new row", pgoutRelName(rel))
	}
	return d.add(b, volt.Change{Kind: volt.ChangeInsert, Relation: rel, New: row})
}

// decodeUpdate: Int32 relation OID, optional Byte1 'K' or 'O' + TupleData
// (the old key or the old row), Byte1 'N' + TupleData (the new row).
func (d *Decoder) decodeUpdate(b *pgoutBuf) error {
	rel, err := d.changeRelation(b)
	if err != nil {
		return err
	}
	tag := b.u8()
	if b.err == nil && tag != 'O' {
		return pgoutNoOldRow("UPDATE", rel)
	}
	old, err := pgoutOldTuple(b, rel)
	if err != nil {
		return fmt.Errorf("UPDATE of %s: old row: %w", pgoutRelName(rel), err)
	}
	if tag := b.u8(); b.err == nil && tag != 'N' {
		return fmt.Errorf("UPDATE of %s: expected new tuple 'N', got %q", pgoutRelName(rel), tag)
	}
	row, unchanged, err := pgoutTuple(b, rel)
	if err != nil {
		return fmt.Errorf("UPDATE of %s: new row: %w", pgoutRelName(rel), err)
	}
	for _, i := range unchanged {
		row[i] = old[i] // unchanged TOASTed value: the old row holds it
	}
	return d.add(b, volt.Change{Kind: volt.ChangeUpdate, Relation: rel, Old: old, New: row})
}

// decodeDelete: Int32 relation OID, Byte1 'K' or 'O', TupleData.
func (d *Decoder) decodeDelete(b *pgoutBuf) error {
	rel, err := d.changeRelation(b)
	if err != nil {
		return err
	}
	if tag := b.u8(); b.err == nil && tag != 'O' {
		return pgoutNoOldRow("DELETE", rel)
	}
	old, err := pgoutOldTuple(b, rel)
	if err != nil {
		return fmt.Errorf("DELETE from %s: old row: %w", pgoutRelName(rel), err)
	}
	return d.add(b, volt.Change{Kind: volt.ChangeDelete, Relation: rel, Old: old})
}

// decodeTruncate: Int32 relation count, Int8 options, Int32 OID per relation.
func (d *Decoder) decodeTruncate(b *pgoutBuf) error {
	if d.tx == nil {
		return errors.New("TRUNCATE outside a transaction")
	}
	n := int(b.u32())
	_ = b.u8() // CASCADE / RESTART IDENTITY
	if b.err != nil {
		return b.err
	}
	if n == 0 {
		return errors.New("TRUNCATE of no relation")
	}
	if n > b.remaining()/4 {
		return fmt.Errorf("%d relations do not fit in %d bytes", n, b.remaining())
	}
	rels := make([]*volt.Relation, 0, n)
	for i := 0; i < n && b.err == nil; i++ {
		id := b.u32()
		rel := d.relations[id]
		if rel == nil && b.err == nil {
			return fmt.Errorf("TRUNCATE of relation %d that was never announced", id)
		}
		rels = append(rels, rel)
	}
	if b.err != nil {
		return b.err
	}
	return d.add(b, volt.Change{Kind: volt.ChangeTruncate, Relation: rels[0], Truncated: rels})
}

// changeRelation reads the relation OID of a row change.
func (d *Decoder) changeRelation(b *pgoutBuf) (*volt.Relation, error) {
	if d.tx == nil {
		return nil, errors.New("row change outside a transaction")
	}
	id := b.u32()
	if b.err != nil {
		return nil, b.err
	}
	rel := d.relations[id]
	if rel == nil {
		return nil, fmt.Errorf("change to relation %d that was never announced", id)
	}
	return rel, nil
}

// add appends c to the transaction once the whole message was consumed.
func (d *Decoder) add(b *pgoutBuf, c volt.Change) error {
	if err := b.done(); err != nil {
		return err
	}
	d.tx.Changes = append(d.tx.Changes, c)
	return nil
}

func pgoutNoOldRow(op string, rel *volt.Relation) error {
	return fmt.Errorf("%s of table %s carries no complete old row: %w (run ALTER TABLE %s REPLICA IDENTITY FULL)",
		op, pgoutRelName(rel), ErrReplicaIdentityNotFull, pgoutRelName(rel))
}

// pgoutOldTuple reads a complete old row (REPLICA IDENTITY FULL, where
// Postgres detoasts every value).
func pgoutOldTuple(b *pgoutBuf, rel *volt.Relation) ([]volt.Value, error) {
	row, unchanged, err := pgoutTuple(b, rel)
	if err != nil {
		return nil, err
	}
	if unchanged != nil {
		return nil, fmt.Errorf("column %q: unchanged TOAST value in the old row", rel.Columns[unchanged[0]].Name)
	}
	return row, nil
}

// pgoutTuple reads TupleData: Int16 column count, then per column Byte1
// kind ('n' null, 'u' unchanged TOAST, 't' text with Int32 length). It
// returns the values and the positions of unchanged TOAST values.
func pgoutTuple(b *pgoutBuf, rel *volt.Relation) (row []volt.Value, unchanged []int, err error) {
	n := int(b.u16())
	if b.err != nil {
		return nil, nil, b.err
	}
	if n != len(rel.Columns) {
		return nil, nil, fmt.Errorf("tuple has %d columns, relation has %d", n, len(rel.Columns))
	}
	row = make([]volt.Value, n)
	for i := 0; i < n; i++ {
		switch kind := b.u8(); kind {
		case pgoutNull:
			row[i] = volt.Value{Null: true}
		case pgoutUnchanged:
			unchanged = append(unchanged, i)
		case pgoutTextValue:
			row[i] = volt.Value{Text: pgoutText(rel.Columns[i], b.bytes(int(b.u32())))}
		case pgoutBinary:
			return nil, nil, fmt.Errorf("column %q: binary value (the stream must use text format)", rel.Columns[i].Name)
		default:
			if b.err != nil {
				return nil, nil, b.err
			}
			return nil, nil, fmt.Errorf("column %q: unknown tuple kind %q", rel.Columns[i].Name, kind)
		}
	}
	return row, unchanged, b.err
}

// pgoutText converts a text value, normalising scalar booleans.
func pgoutText(c volt.RelationColumn, v []byte) string {
	if c.TypeOID == pgoutBoolOID && len(v) == 1 {
		switch v[0] {
		case 't':
			return "true"
		case 'f':
			return "false"
		}
	}
	return string(v)
}

func pgoutRelName(rel *volt.Relation) string {
	return pgx.Identifier{rel.Schema, rel.Name}.Sanitize()
}

func pgoutTime(us uint64) time.Time {
	return pgoutEpoch.Add(time.Duration(int64(us)) * time.Microsecond)
}

// pgoutBuf reads big-endian fields from a message. The first short read sets
// err; later reads return zero values, so callers check err once.
type pgoutBuf struct {
	b   []byte
	err error
}

var errPgoutShort = errors.New("message is truncated")

func (b *pgoutBuf) take(n int) []byte {
	if b.err != nil {
		return nil
	}
	if n < 0 || n > len(b.b) {
		b.err = errPgoutShort
		return nil
	}
	v := b.b[:n:n]
	b.b = b.b[n:]
	return v
}

func (b *pgoutBuf) remaining() int { return len(b.b) }

func (b *pgoutBuf) u8() byte {
	if v := b.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (b *pgoutBuf) u16() uint16 {
	if v := b.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (b *pgoutBuf) u32() uint32 {
	if v := b.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (b *pgoutBuf) u64() uint64 {
	if v := b.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// bytes reads n bytes; a length of -1 (or any negative Int32) is invalid here.
func (b *pgoutBuf) bytes(n int) []byte {
	if n > len(b.b) || int32(n) < 0 {
		if b.err == nil {
			b.err = errPgoutShort
		}
		return nil
	}
	return b.take(n)
}

// str reads a NUL-terminated string.
func (b *pgoutBuf) str() string {
	if b.err != nil {
		return ""
	}
	for i, c := range b.b {
		if c == 0 {
			s := string(b.b[:i])
			b.b = b.b[i+1:]
			return s
		}
	}
	b.err = errors.New("unterminated string")
	return ""
}

// done reports a short read or trailing bytes.
func (b *pgoutBuf) done() error {
	if b.err != nil {
		return b.err
	}
	if len(b.b) != 0 {
		return fmt.Errorf("%d unexpected trailing bytes", len(b.b))
	}
	return nil
}
