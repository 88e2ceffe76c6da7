package client

import (
	"slices"
	"strings"

	"github.com/voltsync/volt"
)

// MoveTracker applies the moves of a shape whose where clause has
// subqueries, as TanStack DB's Electric collection does: it keeps each
// row's tags and active conditions, indexed by (position, slot value),
// and tells which rows a Move takes out of the shape. Feed it every
// Change in order (Change) and every Move (Move); Reset it on a
// must-refetch. Shape uses one; the zero value is ready to use. It is not
// safe for concurrent use.
//
// A tag is one slot per position of the where clause in disjunctive
// normal form, joined by "/"; a row has one tag per disjunct, whose
// non-empty slots are the disjunct's positions. The disjuncts are taken
// from the first change that carries tags, and tags of another width are
// ignored afterwards. A row is in the shape while some disjunct has all
// its positions true in the row's active conditions. Rows without active
// conditions follow the older rule: a move-out removes their tags that
// match a pattern, and the row goes when it has no tag left.
type MoveTracker struct {
	width     int     // slots per tag; 0 before the first tag
	disjuncts [][]int // the non-empty positions of each tag
	rows      map[string]*tagRow
	index     map[tagSlot]map[string]struct{}
}

// tagRow is the state of one row.
type tagRow struct {
	tags map[string][]string // tag → its slots
	ac   []bool              // nil: the row has no active conditions
}

// tagSlot is a non-empty slot of a tag.
type tagSlot struct {
	pos   int
	value string
}

// Reset forgets every row and the disjuncts (a must-refetch).
func (t *MoveTracker) Reset() { *t = MoveTracker{} }

// Change records a change: an insert or update adds its Tags, removes its
// RemovedTags and stores its ActiveConditions when it carries any (an
// insert of a known key is an update); a delete forgets the row.
func (t *MoveTracker) Change(c *Change) {
	if c.Operation == volt.OpDelete {
		t.forget(c.Key)
		return
	}
	if len(c.Tags) == 0 && len(c.RemovedTags) == 0 && len(c.ActiveConditions) == 0 {
		return
	}
	r := t.rows[c.Key]
	if r == nil {
		r = &tagRow{tags: map[string][]string{}}
		if t.rows == nil {
			t.rows, t.index = map[string]*tagRow{}, map[tagSlot]map[string]struct{}{}
		}
		t.rows[c.Key] = r
	}
	t.unindex(c.Key, r)
	if t.width == 0 && len(c.Tags) > 0 {
		t.learn(c.Tags)
	}
	for _, tag := range c.RemovedTags {
		delete(r.tags, tag)
	}
	for _, tag := range c.Tags {
		if slots := strings.Split(tag, "/"); len(slots) == t.width {
			r.tags[tag] = slots
		}
	}
	if len(c.ActiveConditions) > 0 {
		r.ac = slices.Clone(c.ActiveConditions)
	}
	if len(r.tags) == 0 && r.ac == nil {
		delete(t.rows, c.Key)
		return
	}
	t.reindex(c.Key, r)
}

// learn takes the disjuncts from the first tags seen.
func (t *MoveTracker) learn(tags []string) {
	t.width = len(strings.Split(tags[0], "/"))
	for _, tag := range tags {
		slots := strings.Split(tag, "/")
		if len(slots) != t.width {
			continue
		}
		var d []int
		for p, s := range slots {
			if s != "" {
				d = append(d, p)
			}
		}
		t.disjuncts = append(t.disjuncts, d)
	}
}

// Move applies a move and returns the keys of the rows it takes out of
// the shape, sorted; their state is forgotten. A move-out sets the
// matched positions of the matched rows false, a move-in sets them true
// (the rows that move in follow as inserts).
func (t *MoveTracker) Move(m *Move) []string {
	touched := map[string]struct{}{}
	for _, p := range m.Patterns {
		slot := tagSlot{p.Pos, p.Value}
		keys := make([]string, 0, len(t.index[slot]))
		for key := range t.index[slot] {
			keys = append(keys, key)
		}
		for _, key := range keys {
			r := t.rows[key]
			if r.ac == nil {
				if m.Kind == MoveOut {
					t.dropMatching(key, r, slot)
					touched[key] = struct{}{}
				}
				continue
			}
			if p.Pos < len(r.ac) {
				r.ac[p.Pos] = m.Kind == MoveIn
			}
			touched[key] = struct{}{}
		}
	}
	if m.Kind != MoveOut {
		return nil
	}
	var gone []string
	for key := range touched {
		if r := t.rows[key]; !t.included(r) {
			t.forget(key)
			gone = append(gone, key)
		}
	}
	slices.Sort(gone)
	return gone
}

// dropMatching removes the tags of a row without active conditions that
// hold slot (the older rule).
func (t *MoveTracker) dropMatching(key string, r *tagRow, slot tagSlot) {
	t.unindex(key, r)
	for tag, slots := range r.tags {
		if slots[slot.pos] == slot.value {
			delete(r.tags, tag)
		}
	}
	t.reindex(key, r)
}

// included reports whether a row is still in the shape: without active
// conditions while it has a tag, with them while some disjunct has all
// its positions true.
func (t *MoveTracker) included(r *tagRow) bool {
	if r.ac == nil {
		return len(r.tags) > 0
	}
	for _, d := range t.disjuncts {
		all := true
		for _, p := range d {
			if p >= len(r.ac) || !r.ac[p] {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (t *MoveTracker) forget(key string) {
	if r := t.rows[key]; r != nil {
		t.unindex(key, r)
		delete(t.rows, key)
	}
}

func (t *MoveTracker) unindex(key string, r *tagRow) {
	for _, slots := range r.tags {
		for p, s := range slots {
			if s == "" {
				continue
			}
			slot := tagSlot{p, s}
			delete(t.index[slot], key)
			if len(t.index[slot]) == 0 {
				delete(t.index, slot)
			}
		}
	}
}

func (t *MoveTracker) reindex(key string, r *tagRow) {
	for _, slots := range r.tags {
		for p, s := range slots {
			if s == "" {
				continue
			}
			slot := tagSlot{p, s}
			if t.index[slot] == nil {
				t.index[slot] = map[string]struct{}{}
			}
			t.index[slot][key] = struct{}{}
		}
	}
}

// Row returns the tags and active conditions the tracker holds for key
// (to persist them and feed them back with Change after a restart); ok is
// false when it holds nothing for key.
func (t *MoveTracker) Row(key string) (tags []string, conds []bool, ok bool) {
	r := t.rows[key]
	if r == nil {
		return nil, nil, false
	}
	for tag := range r.tags {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	return tags, slices.Clone(r.ac), true
}

// Matching returns the keys of the rows whose tags a move's patterns
// match, sorted: the rows Move may change.
func (t *MoveTracker) Matching(m *Move) []string {
	seen := map[string]struct{}{}
	var keys []string
	for _, p := range m.Patterns {
		for key := range t.index[tagSlot{p.Pos, p.Value}] {
			if _, ok := seen[key]; !ok {
				seen[key] = struct{}{}
				keys = append(keys, key)
			}
		}
	}
	slices.Sort(keys)
	return keys
}
