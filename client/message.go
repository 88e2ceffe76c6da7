package client

import (
	"encoding/json"
	"strconv"

	"github.com/voltsync/volt"
)

// Event is one item of a Batch: *Change, *UpToDate, *SnapshotEnd,
// *MustRefetch or *Move. Other control messages (e.g. subset-end) and
// event messages of other kinds are skipped.
type Event interface{ event() }

// Change is a change message: a row inserted, updated or deleted.
type Change struct {
	// Key identifies the row within the shape.
	Key string
	// Operation is volt.OpInsert, volt.OpUpdate or volt.OpDelete.
	Operation string
	// Value holds the typed column values: the whole row for inserts; for
	// updates the primary key and the changed columns (the whole row with
	// replica=full); for deletes the primary key (the whole old row with
	// replica=full).
	Value Row
	// OldValue holds the previous values of the changed columns of an
	// update with replica=full; nil otherwise.
	OldValue Row
	// Relation is [schema, table].
	Relation []string
	// LSN is the commit LSN of the change's transaction; 0 for rows of the
	// initial snapshot, which carry no LSN, op position or txids.
	LSN        uint64
	OpPosition uint64
	// Txids holds the 32-bit Postgres transaction id of the change.
	Txids []uint32
	// Last marks the last change of its transaction in this shape.
	Last bool
	// KeyChangeTo and KeyChangeFrom link the delete and insert that an
	// update of the primary key produces.
	KeyChangeTo, KeyChangeFrom string

	// Tags, RemovedTags and ActiveConditions are the row's metadata in a
	// shape whose where clause has subqueries (nil otherwise): the tags
	// the row gains and loses, one per disjunct of the where clause, each
	// made of slots joined by "/", and the truth of each position of the
	// where clause for the row. MoveTracker keeps them to apply Moves.
	Tags, RemovedTags []string
	ActiveConditions  []bool
	// IsMoveIn marks an insert that a move-in brought (informational).
	IsMoveIn bool
	// MovedOut marks a delete that the client made itself: a move-out left
	// the row in no disjunct of the where clause (the server sends no
	// delete then). Its Value is the row as it was.
	MovedOut bool
}

// MoveKind is the kind of a Move.
type MoveKind string

// Kinds of a Move.
const (
	MoveIn  MoveKind = "move-in"
	MoveOut MoveKind = "move-out"
)

// Move is an event message of a shape whose where clause has subqueries
// (x IN (SELECT …)): values entered (MoveIn) or left (MoveOut) a
// subquery's result, which flips the conditions of the rows whose tags
// hold one of Patterns. The server sends no delete for the rows that
// move out; the rows that move in follow as inserts (IsMoveIn), then a
// SnapshotEnd when there are any. Shape applies moves (see MoveTracker).
type Move struct {
	Kind     MoveKind
	Patterns []MovePattern
	// Txids holds the 32-bit ids of the transactions that caused the move
	// (possibly none).
	Txids []uint32
}

// MovePattern matches the rows whose tags hold Value in slot Pos (a
// position of the where clause in disjunctive normal form).
type MovePattern struct {
	Pos   int    `json:"pos"`
	Value string `json:"value"`
}

// UpToDate says the stream has reached the head of the shape log: the
// changes before it form a consistent state of the shape.
type UpToDate struct {
	// LSN is the message's global_last_seen_lsn.
	LSN uint64
}

// SnapshotEnd ends the initial snapshot and tells which transactions it
// includes (as pg_current_snapshot() of the snapshot transaction): those
// with xid < Xmin, and those with xid < Xmax that are not in Xip
// (Snapshot.Visible).
type SnapshotEnd struct {
	volt.Snapshot
}

// MustRefetch says the shape was replaced: the stream starts again from
// the beginning with Handle, and every row seen so far must be dropped.
type MustRefetch struct {
	// Handle is the new shape handle ("" when the server did not name one).
	Handle string
}

func (*Change) event()      {}
func (*UpToDate) event()    {}
func (*SnapshotEnd) event() {}
func (*MustRefetch) event() {}
func (*Move) event()        {}

// wireMessage is a message as it is on the wire.
type wireMessage struct {
	Key      *string            `json:"key"`
	Value    map[string]*string `json:"value"`
	OldValue map[string]*string `json:"old_value"`
	Headers  struct {
		Operation     string   `json:"operation"`
		Control       string   `json:"control"`
		Relation      []string `json:"relation"`
		LSN           string   `json:"lsn"`
		OpPosition    uint64   `json:"op_position"`
		Txids         []uint64 `json:"txids"`
		Last          bool     `json:"last"`
		KeyChangeTo   string   `json:"key_change_to"`
		KeyChangeFrom string   `json:"key_change_from"`
		GlobalLSN     string   `json:"global_last_seen_lsn"`
		Xmin          string   `json:"xmin"`
		Xmax          string   `json:"xmax"`
		XipList       []string `json:"xip_list"`
		// Subquery shapes.
		Tags             []string      `json:"tags"`
		RemovedTags      []string      `json:"removed_tags"`
		ActiveConditions []bool        `json:"active_conditions"`
		IsMoveIn         bool          `json:"is_move_in"`
		Event            string        `json:"event"`
		Patterns         []MovePattern `json:"patterns"`
	} `json:"headers"`
}

// decodeMessage converts one wire message into an Event (nil for messages
// this client skips).
func decodeMessage(raw []byte, schema Schema) (Event, error) {
	var m wireMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, protocolErrorf("message %.200s: %v", raw, err)
	}
	if m.Key != nil {
		return decodeChange(&m, schema)
	}
	if m.Headers.Event != "" {
		return decodeMove(&m)
	}
	switch h := &m.Headers; h.Control {
	case volt.ControlUpToDate:
		lsn, err := parseLSN(h.GlobalLSN)
		return &UpToDate{LSN: lsn}, err
	case volt.ControlSnapshotEnd:
		return decodeSnapshotEnd(h.Xmin, h.Xmax, h.XipList)
	case volt.ControlMustRefetch:
		return &MustRefetch{}, nil
	}
	return nil, nil
}

func decodeChange(m *wireMessage, schema Schema) (Event, error) {
	h := &m.Headers
	c := &Change{
		Key: *m.Key, Operation: h.Operation, Relation: h.Relation,
		OpPosition: h.OpPosition, Last: h.Last,
		KeyChangeTo: h.KeyChangeTo, KeyChangeFrom: h.KeyChangeFrom,
		Tags: h.Tags, RemovedTags: h.RemovedTags, ActiveConditions: h.ActiveConditions,
		IsMoveIn: h.IsMoveIn,
	}
	switch c.Operation {
	case volt.OpInsert, volt.OpUpdate, volt.OpDelete:
	default:
		return nil, protocolErrorf("change %q: unknown operation %q", c.Key, h.Operation)
	}
	var err error
	if c.LSN, err = parseLSN(h.LSN); err != nil {
		return nil, err
	}
	for _, x := range h.Txids {
		c.Txids = append(c.Txids, uint32(x)) // an xid8 modulo 2³² is its xid
	}
	if c.Value, err = schema.parseRow(m.Value); err != nil {
		return nil, err
	}
	if c.OldValue, err = schema.parseRow(m.OldValue); err != nil {
		return nil, err
	}
	if c.Value == nil {
		c.Value = Row{}
	}
	return c, nil
}

// decodeMove decodes a move-in or move-out event (nil for other events).
func decodeMove(m *wireMessage) (Event, error) {
	h := &m.Headers
	mv := &Move{Kind: MoveKind(h.Event), Patterns: h.Patterns}
	switch mv.Kind {
	case MoveIn, MoveOut:
	default:
		return nil, nil
	}
	for _, p := range mv.Patterns {
		if p.Pos < 0 {
			return nil, protocolErrorf("%s: pattern position %d is negative", h.Event, p.Pos)
		}
	}
	for _, x := range h.Txids {
		mv.Txids = append(mv.Txids, uint32(x))
	}
	return mv, nil
}

func decodeSnapshotEnd(xmin, xmax string, xip []string) (Event, error) {
	snap, err := volt.ParseSnapshot(xmin, xmax, xip)
	if err != nil {
		return nil, protocolErrorf("snapshot-end %v", err)
	}
	return &SnapshotEnd{snap}, nil
}

// parseLSN parses a decimal LSN; "" is 0.
func parseLSN(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, protocolErrorf("lsn %q is not a decimal number", s)
	}
	return n, nil
}

// decodeBody decodes a JSON array of messages.
func decodeBody(body []byte, schema Schema) ([]Event, error) {
	if len(body) == 0 {
		return nil, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, protocolErrorf("body is not a JSON array of messages: %v", err)
	}
	events := make([]Event, 0, len(raws))
	for _, raw := range raws {
		ev, err := decodeMessage(raw, schema)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			events = append(events, ev)
		}
	}
	return events, nil
}
