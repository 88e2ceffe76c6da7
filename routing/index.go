// Package routing finds the shapes a row change can affect without
// evaluating every shape's where clause.
//
// With 100,000 shapes of the form owner_id = k, evaluating each clause for
// each change costs 100,000 evaluations. Index instead files every shape
// under the keys its clause requires (where.Expr.IndexTerms) and looks a
// changed row's keys up: a change costs one lookup per indexed column of
// its table, plus the candidates found, plus the shapes whose clauses
// cannot be indexed, however many shapes there are. Candidates may still
// not match: the caller evaluates them as before.
package routing

import (
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/where"
)

// Index maps row changes of a relation to the shapes of type S they can
// affect. The zero value is ready to use. It is not safe for concurrent
// use: the shape cache calls it under its lock.
type Index[S comparable] struct {
	rels   map[uint32]*relation[S]
	shapes map[S]*entry[S]
	epoch  uint64 // numbers Match calls, to yield each shape once per call
}

// relation holds the shapes of one table.
type relation[S comparable] struct {
	cols  []*column[S] // the (column, key kind) pairs some shape is filed under
	scan  []*entry[S]  // shapes that every change is matched against
	count int          // shapes of the relation, including ones never matched
}

// column files shapes by the key their clause requires of one column.
type column[S comparable] struct {
	name string
	kind where.KeyKind
	keys map[string]*bucket[S]
	peak int // len(keys) high-water mark since keys was allocated
}

// bucket holds the shapes filed under one key of a column.
type bucket[S comparable] struct {
	col  *column[S]
	key  string
	refs []ref[S]
}

// ref is one shape in a bucket; slot is the index of the term in the
// entry's slots, so that a removal can fix up a moved ref in O(1).
type ref[S comparable] struct {
	e    *entry[S]
	slot int32
}

// slot is where one term of a shape is filed.
type slot[S comparable] struct {
	b   *bucket[S]
	pos int32 // index into b.refs
}

// entry is one shape.
type entry[S comparable] struct {
	s     S
	rel   uint32
	seen  uint64 // epoch of the last Match that yielded s
	pos   int32  // index into relation.scan, or -1 when filed under slots
	slots []slot[S]
}

// Add files shape s under relation rel with where clause f; nil means the
// shape matches every row. Adding a shape that is already present
// replaces it.
func (ix *Index[S]) Add(s S, rel uint32, f *where.Expr) {
	var terms []where.Term
	ok := false
	if f != nil {
		terms, ok = f.IndexTerms()
	}
	ix.AddTerms(s, rel, terms, ok)
}

// Remove removes shape s; removing an absent shape does nothing. Memory
// of keys, columns and relations left without shapes is released.
func (ix *Index[S]) Remove(s S) {
	e := ix.shapes[s]
	if e == nil {
		return
	}
	delete(ix.shapes, s)
	r := ix.rels[e.rel]
	if e.pos >= 0 {
		last := len(r.scan) - 1
		moved := r.scan[last]
		r.scan[e.pos], moved.pos = moved, e.pos
		r.scan[last] = nil
		r.scan = shrink(r.scan[:last])
	}
	for _, sl := range e.slots {
		if sl.b.remove(sl.pos) {
			r.drop(sl.b)
		}
	}
	if r.count--; r.count == 0 {
		delete(ix.rels, e.rel)
	}
}

// Len returns the number of shapes in the index.
func (ix *Index[S]) Len() int { return len(ix.shapes) }

// Match calls fn once for each shape of relation rel that a change with
// row images old and new (nil when the change has none) can affect: the
// shapes filed under a key of either image, and every shape whose clause
// is not indexable. Shapes not yielded do not match either image.
//
// fn may Remove shapes (e.g. one whose schema changed) but not Add them.
func (ix *Index[S]) Match(rel uint32, old, new where.Row, fn func(S)) {
	var o, n func(string) (string, bool)
	if old != nil {
		o = old.Value
	}
	if new != nil {
		n = new.Value
	}
	ix.match(rel, o, n, fn)
}

// MatchChange is Match for a replicated insert, update or delete: it
// reads the change's relation and its Old and New rows. A truncate
// matches nothing; the caller handles it per relation.
func (ix *Index[S]) MatchChange(ch *volt.Change, fn func(S)) {
	if ch.Relation == nil || ch.Kind == volt.ChangeTruncate {
		return
	}
	var o, n func(string) (string, bool)
	if ch.Old != nil {
		o = func(col string) (string, bool) { return value(ch.Relation, ch.Old, col) }
	}
	if ch.New != nil {
		n = func(col string) (string, bool) { return value(ch.Relation, ch.New, col) }
	}
	ix.match(ch.Relation.ID, o, n, fn)
}

// AppendChange appends the shapes MatchChange would yield to dst and
// returns the extended slice; reusing dst across changes avoids
// allocating. It lets the shape cache keep its per-shape loop as it is,
// errors, removals and all:
//
//	c.cands = c.index.AppendChange(c.cands[:0], ch)
//	for _, e := range c.cands {
//		msgs, err := e.Shape.Convert(ch, uint64(2*i))
//		...
//	}
func (ix *Index[S]) AppendChange(dst []S, ch *volt.Change) []S {
	ix.MatchChange(ch, func(s S) { dst = append(dst, s) })
	return dst
}

// value returns a column's text from a replicated row; ok is false when
// it is NULL or the relation has no such column.
func value(rel *volt.Relation, vals []volt.Value, col string) (string, bool) {
	i := rel.ColumnIndex(col)
	if i < 0 || i >= len(vals) || vals[i].Null {
		return "", false
	}
	return vals[i].Text, true
}

// match implements Match with rows as lookup functions (nil when absent).
// Lists are walked backwards, so a removal by fn (which swaps the last
// element into the hole) only ever moves visited elements; the epoch
// stamp keeps a moved one from being yielded twice.
func (ix *Index[S]) match(rel uint32, old, new func(string) (string, bool), fn func(S)) {
	r := ix.rels[rel]
	if r == nil || old == nil && new == nil {
		return
	}
	ix.epoch++
	for i := len(r.scan) - 1; i >= 0; i-- {
		if i >= len(r.scan) {
			continue
		}
		if e := r.scan[i]; e.seen != ix.epoch {
			e.seen = ix.epoch
			fn(e.s)
		}
	}
	for i := len(r.cols) - 1; i >= 0; i-- {
		if i >= len(r.cols) {
			continue
		}
		c := r.cols[i]
		oldKey, hasOld := c.key(old)
		if hasOld {
			ix.yield(c.keys[oldKey], fn)
		}
		if newKey, ok := c.key(new); ok && (!hasOld || newKey != oldKey) {
			ix.yield(c.keys[newKey], fn)
		}
	}
}

// yield calls fn for the shapes of b not yet yielded by this Match.
func (ix *Index[S]) yield(b *bucket[S], fn func(S)) {
	if b == nil {
		return
	}
	for i := len(b.refs) - 1; i >= 0; i-- {
		if i >= len(b.refs) {
			continue
		}
		if e := b.refs[i].e; e.seen != ix.epoch {
			e.seen = ix.epoch
			fn(e.s)
		}
	}
}

// key returns the key of the column's value in a row.
func (c *column[S]) key(row func(string) (string, bool)) (string, bool) {
	if row == nil {
		return "", false
	}
	v, ok := row(c.name)
	if !ok {
		return "", false
	}
	return c.kind.Key(v)
}

// column returns the relation's column index for (name, kind), adding it.
func (r *relation[S]) column(name string, kind where.KeyKind) *column[S] {
	for _, c := range r.cols {
		if c.name == name && c.kind == kind {
			return c
		}
	}
	c := &column[S]{name: name, kind: kind, keys: map[string]*bucket[S]{}}
	r.cols = append(r.cols, c)
	return c
}

// bucket returns the bucket of key, adding it.
func (c *column[S]) bucket(key string) *bucket[S] {
	b := c.keys[key]
	if b == nil {
		b = &bucket[S]{col: c, key: key}
		c.keys[key] = b
		c.peak = max(c.peak, len(c.keys))
	}
	return b
}

// remove removes the ref at pos, reporting whether the bucket is now empty.
func (b *bucket[S]) remove(pos int32) bool {
	last := int32(len(b.refs) - 1)
	if pos != last {
		moved := b.refs[last]
		b.refs[pos] = moved
		moved.e.slots[moved.slot].pos = pos
	}
	b.refs[last] = ref[S]{}
	b.refs = shrink(b.refs[:last])
	return last == 0
}

// drop forgets an empty bucket, and its column when that was the last
// bucket. A column's map is rebuilt when it has shrunk to a quarter of
// its peak, since Go maps never give back their memory.
func (r *relation[S]) drop(b *bucket[S]) {
	c := b.col
	delete(c.keys, b.key)
	switch {
	case len(c.keys) == 0:
		for i, x := range r.cols {
			if x == c {
				last := len(r.cols) - 1
				r.cols[i] = r.cols[last]
				r.cols[last] = nil
				r.cols = r.cols[:last]
				break
			}
		}
	case c.peak >= 64 && len(c.keys) < c.peak/4:
		keys := make(map[string]*bucket[S], len(c.keys))
		for k, v := range c.keys {
			keys[k] = v
		}
		c.keys, c.peak = keys, len(keys)
	}
}

// shrink reallocates a slice that uses a quarter or less of its capacity,
// so that lists that once were long do not keep their memory.
func shrink[T any](s []T) []T {
	if cap(s) < 16 || len(s) > cap(s)/4 {
		return s
	}
	return append(make([]T, 0, 2*len(s)), s...)
}
