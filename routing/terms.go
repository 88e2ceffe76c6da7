package routing

import "github.com/voltsync/volt/where"

// AddTerms is Add for a clause whose where.Expr.IndexTerms result is
// already known (ok false: not indexable), so a restart can rebuild the
// index from stored terms without parsing every clause.
func (ix *Index[S]) AddTerms(s S, rel uint32, terms []where.Term, ok bool) {
	ix.Remove(s)
	if ix.shapes == nil {
		ix.shapes = map[S]*entry[S]{}
		ix.rels = map[uint32]*relation[S]{}
	}
	r := ix.rels[rel]
	if r == nil {
		r = &relation[S]{}
		ix.rels[rel] = r
	}
	r.count++
	e := &entry[S]{s: s, rel: rel, pos: -1}
	ix.shapes[s] = e
	if !ok {
		e.pos = int32(len(r.scan))
		r.scan = append(r.scan, e)
		return
	}
	// No terms: the clause never matches, so the shape is filed nowhere.
	e.slots = make([]slot[S], len(terms))
	for i, t := range terms {
		b := r.column(t.Column, t.Kind).bucket(t.Key)
		e.slots[i] = slot[S]{b: b, pos: int32(len(b.refs))}
		b.refs = append(b.refs, ref[S]{e: e, slot: int32(i)})
	}
}
