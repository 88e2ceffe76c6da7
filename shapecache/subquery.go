package shapecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
	"github.com/voltsync/volt/where"
)

// This file runs shapes whose where clause has subqueries
// (`col IN (SELECT c FROM t …)`, subqueries.md), behind Cache.Subqueries
// (-experimental-subqueries, issue 16). What is built:
//
//   - the snapshot reads the dependencies' values (the views) and the rows
//     in one REPEATABLE READ transaction, so they are consistent, once it
//     holds every transaction volt has routed (routedUnseen); every row
//     carries tags and active_conditions (§4, §5);
//   - changes to the shape's own table are converted against the views
//     as of their transaction (§6: tags, removed_tags, active_conditions);
//   - each dependency's values are counted (per where.ValueKey) from the
//     snapshot on; a change to a dependency's table is applied to the
//     counts when the replication reader routes it (commit order), and a
//     value entering or leaving a dependency (count 0↔1) is a move
//     (§7.1), handled with the transaction on the shape's table queue:
//     move-outs are events written before the transaction's changes
//     (§7.3), move-ins are a query whose rows are spliced in after them
//     (§7.4, simplified: transactions the query's snapshot already holds
//     are written after the rows, with the views after, where they
//     repeat what the rows hold);
//   - a dependency with subqueries of its own keeps its table's rows and
//     their membership (its where against its own dependencies' values),
//     so a change further down moves values level by level (§7.7);
//   - what patterns cannot describe removes the shape (§8), so its
//     clients get 409 and refetch: NULLs entering or leaving a NOT IN set, a NOT IN set
//     becoming empty or gaining its first value, NOT IN row comparisons,
//     values whose text is not canonical (numeric, float, bpchar,
//     interval), and dependency changes routed before the snapshot that
//     it does not hold.
//
// No dependency shapes are created (the counts and rows live with each
// outer shape, not shared). Subquery shapes are written to the catalog
// and survive a restart or a crash with their handles: their dependency
// state is rebuilt by a resync that appends what changed while volt was
// down (subquery_restore.go); log=changes_only ones are dropped at
// restart (their clients get 409).

// sqState is the subquery state of a shape (guarded by Cache.mu).
type sqState struct {
	plan   *where.Plan
	prefix string // shape.TagPrefix of the handle
	deps   []*sqDep
	// views are the dependencies' values as of the snapshot (nil until
	// its identity is known, then never changed: a move removes the
	// shape).
	views []*where.View
	// cur are the views as of the last transaction routed (routing
	// applies move-outs to copies; nil until views is set).
	cur []*where.View
	// raw holds the shape's own transactions routed before the views
	// were known (converted by setSubquerySnapshot); early the changes to
	// dependency tables routed meanwhile.
	raw   []rawTxn
	early []earlyChange
	// moveInSnap and moveInLSN are the snapshot and WAL insert position
	// of the latest move-in query: later transactions it holds are
	// written as upserts (ConvertWithViews).
	moveInSnap *volt.Snapshot
	moveInLSN  uint64
	// moving is set while the shape's move-ins run (moveInLoop, off its
	// table's worker); its later transactions wait in queue meanwhile and
	// are written in order after the splice.
	moving bool
	queue  []sqWork
}

// sqWork is a subquery shape's part of a transaction (as tableJob holds
// it) waiting for the shape's move-in: its changes, the views to convert
// them with, the move-out events before them and the move-ins after.
type sqWork struct {
	st      *txState
	changes []int
	views   []*where.View
	pre     [][]byte
	moveIns []sqMoveIn
}

type rawTxn struct {
	tx      *volt.Transaction
	changes []int
}

type earlyChange struct {
	tx *volt.Transaction
	ch *volt.Change
}

// sqDep is one dependency of a subquery shape.
type sqDep struct {
	dep *where.Dependency
	// inner is the dependency as an ordinary shape on its table (its where
	// evaluates the inner rows); nil when it has subqueries of its own.
	inner *shape.Shape
	oid   uint32
	// tables are the OIDs of every table the dependency reads (its own
	// and those of nested subqueries).
	tables []uint32
	counts map[where.ValueKey]int
	// A dependency with subqueries of its own (§7.7) is materialised:
	// table is its whole table, rows and in its rows and whether each is
	// in the dependency (its where with subViews, the values of sub).
	table    *shape.Shape
	rows     map[string][]volt.Value
	in       map[string]bool
	sub      []*sqDep
	subViews []*where.View
}

// sqMove is a value entering (in) or leaving dependency d's values.
type sqMove struct {
	d   int
	val where.Value
	key where.ValueKey
	in  bool
}

// NewShape builds the shape def asks for on table: shape.New, or with
// Subqueries shape.NewWithSubqueries resolving the subqueries' tables
// through Table (an unqualified name is looked up in public).
func (c *Cache) NewShape(ctx context.Context, def shape.Definition, table *volt.Table) (*shape.Shape, error) {
	if !c.Subqueries {
		return shape.New(def, table)
	}
	return shape.NewWithSubqueries(def, table, c.whereTables(ctx))
}

// whereTables resolves subquery tables through the cache's lookups.
func (c *Cache) whereTables(ctx context.Context) where.Tables {
	return func(ref where.TableRef) (where.Table, error) {
		schema := ref.Schema
		if schema == "" {
			schema = "public"
		}
		t, err := c.Table(ctx, schema, ref.Name)
		if errors.Is(err, ErrTableNotFound) {
			return where.Table{}, fmt.Errorf("Table %s does not exist", quoteQualified(schema, ref.Name))
		}
		if err != nil {
			return where.Table{}, err
		}
		return whereTable(t), nil
	}
}

func whereTable(t *volt.Table) where.Table {
	wt := where.Table{Schema: t.Schema, Name: t.Name}
	for _, col := range t.Columns {
		wt.Columns = append(wt.Columns, where.Column{Name: col.Name, Type: col.TypeName, Dims: col.Dims, IsEnum: col.IsEnum})
	}
	return wt
}

// newSubqueryState resolves the tables of s's dependencies.
func (c *Cache) newSubqueryState(ctx context.Context, s *shape.Shape, handle string) (*sqState, error) {
	plan := s.Plan()
	st := &sqState{plan: plan, prefix: shape.TagPrefix(handle)}
	for _, dep := range plan.Deps {
		d, err := c.newSqDep(ctx, dep)
		if err != nil {
			return nil, err
		}
		st.deps = append(st.deps, d)
	}
	return st, nil
}

// newSqDep resolves a dependency's table (and those of its own
// dependencies).
func (c *Cache) newSqDep(ctx context.Context, dep *where.Dependency) (*sqDep, error) {
	t, err := c.Table(ctx, dep.Schema, dep.Table)
	if err != nil {
		return nil, fmt.Errorf("subquery table %s.%s: %w", dep.Schema, dep.Table, err)
	}
	d := &sqDep{dep: dep, oid: t.OID, counts: map[where.ValueKey]int{}}
	if d.tables, err = c.depTables(ctx, dep, t); err != nil {
		return nil, err
	}
	if dep.Plan == nil || len(dep.Plan.Deps) == 0 {
		if d.inner, err = shape.New(shape.Definition{Schema: t.Schema, Table: t.Name, Where: dep.Where}, t); err != nil {
			d.inner = nil // evaluated conservatively: every change is a move
		}
		return d, nil
	}
	if d.table, err = shape.New(shape.Definition{Schema: t.Schema, Table: t.Name}, t); err != nil {
		return nil, fmt.Errorf("subquery table %s.%s: %w", dep.Schema, dep.Table, err)
	}
	d.rows, d.in = map[string][]volt.Value{}, map[string]bool{}
	for _, nd := range dep.Plan.Deps {
		sd, err := c.newSqDep(ctx, nd)
		if err != nil {
			return nil, err
		}
		d.sub = append(d.sub, sd)
		d.subViews = append(d.subViews, where.NewView(nd.Types))
	}
	return d, nil
}

// depTables lists the OIDs of the tables dep reads, t (its own) first.
func (c *Cache) depTables(ctx context.Context, dep *where.Dependency, t *volt.Table) ([]uint32, error) {
	out := []uint32{t.OID}
	if dep.Plan == nil {
		return out, nil
	}
	for _, nd := range dep.Plan.Deps {
		nt, err := c.Table(ctx, nd.Schema, nd.Table)
		if err != nil {
			return nil, fmt.Errorf("subquery table %s.%s: %w", nd.Schema, nd.Table, err)
		}
		more, err := c.depTables(ctx, nd, nt)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// sqTables returns the distinct tables e's dependencies read.
func (st *sqState) tables() []uint32 {
	var out []uint32
	seen := map[uint32]bool{}
	for _, d := range st.deps {
		for _, oid := range d.tables {
			if !seen[oid] {
				seen[oid] = true
				out = append(out, oid)
			}
		}
	}
	return out
}

// sqRef is one dependency (d, an index into e.sq.deps) of a subquery
// shape as filed in Cache.sqIndex under table oid.
type sqRef struct {
	e   *Entry
	d   int
	oid uint32
}

// registerSubqueryLocked makes changes to e's dependency tables reach
// routeSubqueryLocked: e is listed under each table, and each dependency
// is filed in the routing index under the keys its inner where requires
// (`user_id = 'k'` under key k of user_id), so that a change reaches only
// the dependencies whose where it can match. A dependency whose where is
// not indexable, has none, or has subqueries of its own (under each table
// it reads) is in the index's scan list: every change evaluates it.
func (c *Cache) registerSubqueryLocked(e *Entry) {
	if c.sqByTable == nil {
		c.sqByTable = map[uint32]map[*Entry]struct{}{}
	}
	for _, oid := range e.sq.tables() {
		m := c.sqByTable[oid]
		if m == nil {
			m = map[*Entry]struct{}{}
			c.sqByTable[oid] = m
		}
		m[e] = struct{}{}
	}
	for i, d := range e.sq.deps {
		if d.inner != nil && d.table == nil {
			terms, ok := routeTerms(d.inner)
			if rel := c.sqRel[d.oid]; rel != nil && d.inner.CheckRelation(rel) != nil {
				ok = false // every change reaches it: apply finds it unsure
			}
			c.sqIndex.AddTerms(sqRef{e: e, d: i, oid: d.oid}, d.oid, terms, ok)
			continue
		}
		for _, oid := range d.tables {
			c.sqIndex.AddTerms(sqRef{e: e, d: i, oid: oid}, oid, nil, false)
		}
	}
}

func (c *Cache) unregisterSubqueryLocked(e *Entry) {
	for _, oid := range e.sq.tables() {
		if m := c.sqByTable[oid]; m != nil {
			delete(m, e)
			if len(m) == 0 {
				delete(c.sqByTable, oid)
			}
		}
	}
	for i, d := range e.sq.deps {
		for _, oid := range d.tables {
			c.sqIndex.Remove(sqRef{e: e, d: i, oid: oid})
		}
	}
}

// whyTooManyValues is the removal reason of a subquery shape whose
// subqueries came to hold more than Cache.MaxSubqueryValues values.
const whyTooManyValues = "subquery values over the limit"

// sqBudget counts the values (and nested rows) a shape's subqueries hold
// against Cache.MaxSubqueryValues; a nil budget has no limit.
type sqBudget struct{ left, limit int }

func (c *Cache) subqueryBudget() *sqBudget {
	if c.MaxSubqueryValues <= 0 {
		return nil
	}
	return &sqBudget{left: c.MaxSubqueryValues, limit: c.MaxSubqueryValues}
}

// take counts one more value.
func (b *sqBudget) take() error {
	if b == nil {
		return nil
	}
	if b.left--; b.left < 0 {
		return errTooManyValues(b.limit)
	}
	return nil
}

// size is the number of values and nested rows st's dependencies hold
// (what sqBudget counts).
func (st *sqState) size() int {
	n := 0
	for _, d := range st.deps {
		n += d.size()
	}
	return n
}

func (d *sqDep) size() int {
	n := len(d.counts) + len(d.rows)
	for _, sd := range d.sub {
		n += sd.size()
	}
	return n
}

// whyMoved is the removal reason of a subquery shape whose dependency
// moved.
const whyMoved = "subquery dependency changed (moves are not incremental yet: experimental)"

// routeSubqueryLocked applies a change of tx to the dependencies of the
// subquery shapes that read its table and that it can affect (sqIndex),
// collecting their moves in moves (finishSubqueryTxLocked handles them
// once the whole transaction is routed); a shape whose moves cannot be
// known is removed. The first change with a new relation definition of a
// table reaches every dependency on it, so that those the new definition
// no longer fits are found (sqDep.apply checks the relation).
func (c *Cache) routeSubqueryLocked(tx *volt.Transaction, ch *volt.Change, moves map[*Entry][]sqMove) {
	if ch.Relation == nil {
		return
	}
	oid := ch.Relation.ID
	cands := c.sqCands[:0]
	if c.sqRel[oid] != ch.Relation {
		if c.sqRel == nil {
			c.sqRel = map[uint32]*volt.Relation{}
		}
		c.sqRel[oid] = ch.Relation
		for e := range c.sqByTable[oid] {
			for i, d := range e.sq.deps {
				if containsOID(d.tables, oid) {
					cands = append(cands, sqRef{e: e, d: i, oid: oid})
				}
			}
		}
	} else {
		cands = c.sqIndex.AppendChange(cands, ch)
	}
	// Per shape, its dependencies in order (as sqState.applyMoves).
	slices.SortFunc(cands, func(a, b sqRef) int {
		if a.e != b.e {
			return strings.Compare(a.e.Handle, b.e.Handle)
		}
		return a.d - b.d
	})
	for i := 0; i < len(cands); {
		e := cands[i].e
		j := i + 1
		for j < len(cands) && cands[j].e == e {
			j++
		}
		refs := cands[i:j]
		i = j
		if e.IsGone() {
			continue
		}
		if e.sq.views == nil {
			e.sq.early = append(e.sq.early, earlyChange{tx: tx, ch: ch})
			continue
		}
		if tx.CommitLSN < e.snap.LSN && e.snap.Visible(tx.Xid) {
			continue // the snapshot's views hold it
		}
		c.sqApplies += len(refs)
		m, unsure := e.sq.applyRefs(ch, refs)
		if unsure {
			c.removeLocked(e, whyMoved)
			continue
		}
		if n := c.MaxSubqueryValues; n > 0 && e.sq.size() > n {
			c.Logger.Warn("shape with subqueries removed: its subqueries hold more values than the limit", "handle", e.Handle, "limit", n)
			c.removeLocked(e, whyTooManyValues)
			continue
		}
		if len(m) > 0 || moves[e] != nil {
			moves[e] = append(moves[e], m...)
		}
	}
	clear(cands)
	c.sqCands = cands[:0]
}

// sqMoveIn is a move-in of an outer shape: values of dependency d that
// bring rows in, with the views before and after (subqueries.md §7.4).
type sqMoveIn struct {
	d             int
	vals          []*sqMove
	before, after []*where.View
}

// finishSubqueryTxLocked handles the moves a transaction caused: per
// shape, moves of one value that cancel out are dropped; what moves rows
// out (a positive dependency losing a value, a negated one gaining it) is
// applied to the shape's routing views at once and written as one
// move-out event per dependency before the transaction's own changes
// (subqueries.md §7.3, §7.5); what moves rows in is queued on the
// transaction's job, which writes the transaction's changes with the
// views before and then runs a move-in query per dependency (moveIn).
// Moves that patterns cannot describe remove the shape (409).
func (c *Cache) finishSubqueryTxLocked(st *txState, jobs map[uint32]*tableJob, moves map[*Entry][]sqMove) {
	for e, ms := range moves {
		if e.IsGone() || len(ms) == 0 {
			continue
		}
		if why := c.subqueryMovesLocked(st, jobs, e, ms); why != "" {
			c.removeLocked(e, why)
		}
	}
	for _, j := range jobs {
		for _, e := range j.shapes {
			if e.sq != nil && e.sq.cur != nil && j.views[e] == nil {
				if j.views == nil {
					j.views = map[*Entry][]*where.View{}
				}
				j.views[e] = e.sq.cur
			}
		}
	}
}

// subqueryMovesLocked is finishSubqueryTxLocked for one shape; it returns
// why the shape must be removed, or "".
func (c *Cache) subqueryMovesLocked(st *txState, jobs map[uint32]*tableJob, e *Entry, ms []sqMove) string {
	plan := e.sq.plan
	net := map[[2]string]*sqMove{}
	var order [][2]string
	for i := range ms {
		m := &ms[i]
		k := [2]string{strconv.Itoa(m.d), string(m.key)}
		prev, ok := net[k]
		switch {
		case ok && prev != nil && prev.in != m.in:
			net[k] = nil // out and back in (or in and out): no move
		case ok && prev == nil:
			net[k] = m
		case !ok:
			net[k] = m
			order = append(order, k)
		}
	}
	outs := map[int][]*sqMove{}
	ins := map[int][]*sqMove{}
	quiet := map[int][]*sqMove{}
	for _, k := range order {
		m := net[k]
		if m == nil {
			continue
		}
		neg := plan.Negated[m.d]
		if hasNull(m.val) {
			if neg {
				// A NULL entering or leaving a NOT IN set changes rows
				// that no pattern names.
				return "a NULL enters or leaves a NOT IN subquery (experimental)"
			}
			continue // a NULL is never a member: nothing moves
		}
		if !textStable(plan.Deps[m.d].Types) {
			return "moves of values whose text is not canonical (experimental)"
		}
		if neg && len(plan.Deps[m.d].Types) > 1 {
			return "moves of a row-comparison NOT IN subquery (experimental)"
		}
		if neg && e.sq.cur[m.d].HasNull() {
			// NOT IN a set holding a NULL is never true: the value's
			// move changes no row, and an event would tell clients
			// that rows with it now meet the condition.
			quiet[m.d] = append(quiet[m.d], m)
			continue
		}
		if m.in == neg { // positive move-out or negated move-in
			outs[m.d] = append(outs[m.d], m)
		} else {
			ins[m.d] = append(ins[m.d], m)
		}
	}
	// apply returns views with dependency d's view copied and the values
	// of vals added to it or removed as they moved.
	apply := func(views []*where.View, d int, vals []*sqMove) ([]*where.View, error) {
		views = append([]*where.View(nil), views...)
		v := cloneView(views[d], plan.Deps[d].Types)
		for _, m := range vals {
			var err error
			if m.in {
				err = v.Add(m.val)
			} else {
				err = v.Remove(m.val)
			}
			if err != nil {
				return nil, err
			}
		}
		views[d] = v
		return views, nil
	}
	views := e.sq.cur
	for d, ms := range quiet {
		var err error
		if views, err = apply(views, d, ms); err != nil {
			return whyMoved
		}
	}
	if len(outs) == 0 && len(ins) == 0 {
		e.sq.cur = views
		return ""
	}
	var events [][]byte
	for d := range plan.Deps {
		if len(outs[d]) == 0 {
			continue
		}
		if plan.Negated[d] && views[d].Len() == 0 {
			// NULL NOT IN an empty set is true, NOT IN any other unknown:
			// rows with a NULL leave, and no pattern names them.
			return "a value enters an empty NOT IN subquery (experimental)"
		}
		var err error
		if views, err = apply(views, d, outs[d]); err != nil {
			return whyMoved
		}
		events = append(events, moveEvent("move-out", e.sq, d, outs[d], st.tx.Xid))
	}
	txViews := views
	var moveIns []sqMoveIn
	for d := range plan.Deps {
		if len(ins[d]) == 0 {
			continue
		}
		after, err := apply(views, d, ins[d])
		if err != nil {
			return whyMoved
		}
		if plan.Negated[d] && after[d].Len() == 0 {
			return "a NOT IN subquery becomes empty (experimental)"
		}
		moveIns = append(moveIns, sqMoveIn{d: d, vals: ins[d], before: views, after: after})
		views = after
	}
	e.sq.cur = views
	oid := e.Shape.Table.OID
	j := jobs[oid]
	if j == nil {
		j = &tableJob{st: st, changes: map[*Entry][]int{}}
		jobs[oid] = j
	}
	if _, seen := j.changes[e]; !seen {
		j.shapes = append(j.shapes, e)
		j.changes[e] = nil
	}
	if j.pre == nil {
		j.pre = map[*Entry][][]byte{}
		j.views = map[*Entry][]*where.View{}
		j.moveIns = map[*Entry][]sqMoveIn{}
	}
	j.pre[e] = events
	j.views[e] = txViews
	j.moveIns[e] = moveIns
	return ""
}

func hasNull(v where.Value) bool {
	for _, s := range v {
		if s == nil {
			return true
		}
	}
	return false
}

// textStable reports whether equal values of these types always have the
// same text (so a pattern hashed from the dependency's text matches every
// outer row holding an equal value).
func textStable(types []where.Type) bool {
	for _, t := range types {
		switch t.Name {
		case "numeric", "float4", "float8", "bpchar", "interval":
			return false
		}
	}
	return true
}

func cloneView(v *where.View, types []where.Type) *where.View {
	out := where.NewView(types)
	for _, val := range v.Values() {
		_ = out.Add(val) // it was in a view of the same types
	}
	return out
}

// moveEvent renders a move-out or move-in control message of values ms
// of dependency d: a pattern per position of d and value, and the txid.
func moveEvent(event string, st *sqState, d int, ms []*sqMove, xid uint32) []byte {
	type pattern struct {
		Pos   int    `json:"pos"`
		Value string `json:"value"`
	}
	var pats []pattern
	for _, p := range st.plan.DepPositions[d] {
		for _, m := range ms {
			pats = append(pats, pattern{Pos: p, Value: where.SlotHash(st.prefix, st.plan.Positions[p].Columns, m.val)})
		}
	}
	b, _ := json.Marshal(map[string]any{"headers": map[string]any{"event": event, "patterns": pats, "txids": []uint32{xid}}})
	return b
}

// apply counts a change to a dependency table and reports whether it
// moves a value into or out of a dependency (or might: anything that
// cannot be evaluated counts as a move).
func (st *sqState) apply(ch *volt.Change) bool {
	m, unsure := st.applyMoves(ch)
	return unsure || len(m) > 0
}

// applyMoves counts a change to a dependency table and returns the values
// it moves into or out of a dependency; unsure when that cannot be known
// (a nested dependency's table, a row that cannot be evaluated).
func (st *sqState) applyMoves(ch *volt.Change) (moves []sqMove, unsure bool) {
	for di, d := range st.deps {
		if !containsOID(d.tables, ch.Relation.ID) {
			continue
		}
		ms, unsure := d.apply(ch)
		if unsure {
			return nil, true
		}
		for _, m := range ms {
			m.d = di
			moves = append(moves, m)
		}
	}
	return moves, false
}

// applyRefs is applyMoves for the dependencies refs (of st's shape, in
// order) only: those the routing index found for the change.
func (st *sqState) applyRefs(ch *volt.Change, refs []sqRef) (moves []sqMove, unsure bool) {
	for _, r := range refs {
		ms, unsure := st.deps[r.d].apply(ch)
		if unsure {
			return nil, true
		}
		for _, m := range ms {
			m.d = r.d
			moves = append(moves, m)
		}
	}
	return moves, false
}

// apply counts a change to a table d reads and returns the values it
// moves into or out of d; unsure when that cannot be known.
func (d *sqDep) apply(ch *volt.Change) (moves []sqMove, unsure bool) {
	if d.table != nil {
		return d.applyNested(ch)
	}
	if d.inner == nil || ch.Relation.ID != d.oid || d.inner.CheckRelation(ch.Relation) != nil {
		return nil, true
	}
	var before, after *sqMove
	if ch.Kind == volt.ChangeUpdate || ch.Kind == volt.ChangeDelete {
		if ch.Old != nil && d.inner.Matches(ch.Old) {
			if before = d.value(d.inner, ch.Old, false); before == nil {
				return nil, true
			}
		}
	}
	if ch.Kind == volt.ChangeUpdate || ch.Kind == volt.ChangeInsert {
		if ch.New != nil && d.inner.Matches(ch.New) {
			if after = d.value(d.inner, ch.New, true); after == nil {
				return nil, true
			}
		}
	}
	return d.count(before, after), false
}

// value returns the move of the value a row of d's table yields (nil if
// it has no key).
func (d *sqDep) value(s *shape.Shape, vals []volt.Value, in bool) *sqMove {
	val := d.dep.ValueOf(s.Row(vals))
	k, err := where.Key(d.dep.Types, val)
	if err != nil {
		return nil
	}
	return &sqMove{val: val, key: k, in: in}
}

// count replaces a row's value before (nil: the row was not in d) by
// after (nil: it is not now) in d's counts, returning the moves.
func (d *sqDep) count(before, after *sqMove) []sqMove {
	if before != nil && after != nil && before.key == after.key {
		return nil
	}
	var moves []sqMove
	if before != nil {
		d.counts[before.key]--
		if d.counts[before.key] <= 0 {
			delete(d.counts, before.key)
			moves = append(moves, *before)
		}
	}
	if after != nil {
		d.counts[after.key]++
		if d.counts[after.key] == 1 {
			moves = append(moves, *after)
		}
	}
	return moves
}

// includes reports whether a row of a materialised dependency's table is
// in it (its where, with the current values of its own dependencies).
func (d *sqDep) includes(vals []volt.Value) bool {
	m, _ := d.dep.Plan.Meta(d.table.Row(vals), d.subViews, "")
	return m.Included
}

// applyNested is apply for a dependency with dependencies of its own:
// their moves change its views and so which of its rows are in; a change
// to its own table is counted as for a plain one.
func (d *sqDep) applyNested(ch *volt.Change) (moves []sqMove, unsure bool) {
	changedViews := false
	for si, sd := range d.sub {
		if !containsOID(sd.tables, ch.Relation.ID) {
			continue
		}
		sms, unsure := sd.apply(ch)
		if unsure {
			return nil, true
		}
		for _, m := range sms {
			var err error
			if m.in {
				err = d.subViews[si].Add(m.val)
			} else {
				err = d.subViews[si].Remove(m.val)
			}
			if err != nil {
				return nil, true
			}
			changedViews = true
		}
	}
	if changedViews {
		for key, vals := range d.rows {
			in := d.includes(vals)
			if in == d.in[key] {
				continue
			}
			d.in[key] = in
			m := d.value(d.table, vals, in)
			if m == nil {
				return nil, true
			}
			if in {
				moves = append(moves, d.count(nil, m)...)
			} else {
				moves = append(moves, d.count(m, nil)...)
			}
		}
	}
	if ch.Relation.ID != d.oid {
		return moves, false
	}
	if d.table.CheckRelation(ch.Relation) != nil {
		return nil, true
	}
	var before, after *sqMove
	if (ch.Kind == volt.ChangeUpdate || ch.Kind == volt.ChangeDelete) && ch.Old != nil {
		key := d.table.RowKey(ch.Old)
		if old, ok := d.rows[key]; ok {
			if d.in[key] {
				if before = d.value(d.table, old, false); before == nil {
					return nil, true
				}
			}
			delete(d.rows, key)
			delete(d.in, key)
		}
	}
	if (ch.Kind == volt.ChangeUpdate || ch.Kind == volt.ChangeInsert) && ch.New != nil {
		key := d.table.RowKey(ch.New)
		in := d.includes(ch.New)
		d.rows[key], d.in[key] = ch.New, in
		if in {
			if after = d.value(d.table, ch.New, true); after == nil {
				return nil, true
			}
		}
	}
	return append(moves, d.count(before, after)...), false
}

func containsOID(oids []uint32, oid uint32) bool {
	for _, o := range oids {
		if o == oid {
			return true
		}
	}
	return false
}

// takeSubquerySnapshot is takeSnapshot for a shape with subqueries: the
// views and the rows come from one REPEATABLE READ transaction.
func (c *Cache) takeSubquerySnapshot(e *Entry, l *shapelog.Log) (info postgres.SnapshotInfo, rows, bytes int64, err error) {
	s := e.Shape
	ps, ok := c.Snapshotter.(*postgres.Snapshotter)
	if !ok {
		return info, 0, 0, errors.New("shapes with subqueries need a postgres.Snapshotter")
	}
	ctx := c.ctx
	// A transaction routed before the shape was registered never reaches
	// its dependencies' counts: the snapshot must hold it.
	routed := c.routedLSN()
	tx, snap, lsn, err := snapshotTx(ctx, ps, "snapshot", func(s volt.Snapshot) bool { return !c.routedUnseen(s, routed) })
	if err != nil {
		return info, 0, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	info.Snapshot, info.LSN = snap, lsn
	plan := e.sq.plan
	// The dependencies' state is filled here and first used by routing
	// once setSubquerySnapshot has installed the views (under c.mu).
	views := make([]*where.View, len(plan.Deps))
	b := c.subqueryBudget()
	for i, d := range e.sq.deps {
		if views[i], err = readSqDep(ctx, tx, d, b); err != nil {
			return info, 0, 0, err
		}
	}
	if err := c.setSubquerySnapshot(e, l, info, views); err != nil {
		return info, 0, 0, err
	}
	if s.Def.Log == shape.LogChangesOnly {
		return info, 0, 0, tx.Commit(ctx)
	}
	var cols []string
	for _, i := range s.SnapshotColumns() {
		cols = append(cols, postgres.QuoteIdent(s.Table.Columns[i].Name))
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + quoteQualified(s.Table.Schema, s.Table.Name) + " WHERE " + plan.WhereSQL(nil)
	rs, err := tx.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return info, 0, 0, fmt.Errorf("snapshot query: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		row, in, err := s.SnapshotRowWithViews(rs.RawValues(), views, e.sq.prefix)
		if err != nil {
			return info, 0, 0, fmt.Errorf("snapshot row metadata: %w", err)
		}
		if !in {
			c.Logger.Warn("subquery snapshot row not in the shape by its views", "handle", e.Handle)
		}
		rows++
		bytes += int64(len(row))
		if err := l.AppendSnapshot(row); err != nil {
			return info, 0, 0, err
		}
	}
	if err := rs.Err(); err != nil {
		return info, 0, 0, fmt.Errorf("snapshot rows: %w", err)
	}
	return info, rows, bytes, tx.Commit(ctx)
}

// readSqDep reads d's state in the snapshot transaction and returns its
// values: a plain dependency's canonical query, or for one with
// dependencies of its own (read first) every row of its table, kept with
// whether its where holds.
func readSqDep(ctx context.Context, tx pgx.Tx, d *sqDep, b *sqBudget) (*where.View, error) {
	view := where.NewView(d.dep.Types)
	d.counts = map[where.ValueKey]int{}
	if d.table == nil {
		return view, readDependency(ctx, tx, d.dep, view, d.counts, b)
	}
	d.rows, d.in = map[string][]volt.Value{}, map[string]bool{} // read again by a resync
	for si, sd := range d.sub {
		v, err := readSqDep(ctx, tx, sd, b)
		if err != nil {
			return nil, err
		}
		d.subViews[si] = v
	}
	t := d.table.Table
	var cols []string
	var idx []int
	for i, col := range t.Columns {
		if !col.Generated {
			cols = append(cols, postgres.QuoteIdent(col.Name))
			idx = append(idx, i)
		}
	}
	rs, err := tx.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+quoteQualified(t.Schema, t.Name), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, fmt.Errorf("subquery rows: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		vals := make([]volt.Value, len(t.Columns))
		for k, b := range rs.RawValues() {
			i := idx[k]
			if b == nil {
				vals[i].Null = true
				continue
			}
			vals[i].Text = string(b)
			if t.Columns[i].TypeName == "bool" && t.Columns[i].Dims == 0 {
				vals[i].Text = map[string]string{"t": "true", "f": "false"}[vals[i].Text]
			}
		}
		key := d.table.RowKey(vals)
		in := d.includes(vals)
		if err := b.take(); err != nil {
			return nil, err
		}
		d.rows[key], d.in[key] = vals, in
		if in {
			val := d.dep.ValueOf(d.table.Row(vals))
			k, err := where.Key(d.dep.Types, val)
			if err != nil {
				return nil, fmt.Errorf("subquery value: %w", err)
			}
			if err := view.Add(val); err != nil {
				return nil, fmt.Errorf("subquery value: %w", err)
			}
			if d.counts[k] == 0 {
				if err := b.take(); err != nil {
					return nil, err
				}
			}
			d.counts[k]++
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("subquery rows: %w", err)
	}
	return view, nil
}

// readDependency reads dep's values (the rows of its canonical query) into
// view and counts them per key.
func readDependency(ctx context.Context, tx pgx.Tx, dep *where.Dependency, view *where.View, counts map[where.ValueKey]int, b *sqBudget) error {
	rs, err := tx.Query(ctx, dep.SQL(), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("subquery values: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		raw := rs.RawValues()
		val := make(where.Value, len(raw))
		for i, b := range raw {
			if b != nil {
				s := string(b)
				if dep.Types[i].Name == "bool" && !dep.Types[i].Array {
					s = map[string]string{"t": "true", "f": "false"}[s]
				}
				val[i] = &s
			}
		}
		k, err := where.Key(dep.Types, val)
		if err != nil {
			return fmt.Errorf("subquery value: %w", err)
		}
		if err := view.Add(val); err != nil {
			return fmt.Errorf("subquery value: %w", err)
		}
		if counts[k] == 0 {
			if err := b.take(); err != nil {
				return err
			}
		}
		counts[k]++
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("subquery values: %w", err)
	}
	return nil
}

// setSubquerySnapshot is setSnapshot for a shape with subqueries: it also
// installs the views and counts, applies the dependency changes routed
// meanwhile that the snapshot does not hold (a move removes the shape),
// and converts the shape's own transactions routed meanwhile.
func (c *Cache) setSubquerySnapshot(e *Entry, l *shapelog.Log, si postgres.SnapshotInfo, views []*where.View) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.IsGone() {
		return ErrShapeGone
	}
	e.snap = &si
	e.sq.views, e.sq.cur = views, views
	inSnapshot := func(tx *volt.Transaction) bool { return tx.CommitLSN < si.LSN && si.Visible(tx.Xid) }
	for _, ec := range e.sq.early {
		if !inSnapshot(ec.tx) && e.sq.apply(ec.ch) {
			c.removeLocked(e, whyMoved)
			return ErrShapeGone
		}
	}
	e.sq.early = nil
	return c.appendRawLocked(e, l, views)
}

// appendRawLocked converts and appends the shape's own transactions
// buffered before its views were known (sqState.raw), skipping those its
// log already holds, against views (c.mu held).
func (c *Cache) appendRawLocked(e *Entry, l *shapelog.Log, views []*where.View) error {
	for _, r := range e.sq.raw {
		if e.skip(l, r.tx.CommitLSN, r.tx.Xid) {
			continue
		}
		msgs, err := e.convertSubquery(r.tx, r.changes, views, false)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		entries, d := frame(e, r.tx, msgs)
		if err := e.append(l, entries); err != nil {
			return err
		}
		e.rows += d.rows
		e.ops += d.ops
		c.dirty[e] = struct{}{}
	}
	e.sq.raw = nil
	return nil
}

// convertSubquery converts changes of tx for e against views.
func (e *Entry) convertSubquery(tx *volt.Transaction, changes []int, views []*where.View, upsert bool) ([]shape.Message, error) {
	var out []shape.Message
	for _, i := range changes {
		m, err := e.Shape.ConvertWithViews(&tx.Changes[i], uint64(2*i), views, e.sq.prefix, upsert)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	return out, nil
}

// queueIfMoving queues e's part of j while e's move-in runs (the
// transaction is handled once moveInLoop has written it), and reports
// whether it did.
func (c *Cache) queueIfMoving(e *Entry, j *tableJob) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !e.sq.moving {
		return false
	}
	e.sq.queue = append(e.sq.queue, sqWork{st: j.st, changes: j.changes[e], views: j.views[e], pre: j.pre[e], moveIns: j.moveIns[e]})
	j.st.pending++
	return true
}

// convertSubqueryTx converts changes of tx for subquery shape e against
// views (the views as routing left them after the transaction's moves; a
// transaction routed before the snapshot read the views has none and
// uses the snapshot's, or waits in sqState.raw while they are not known:
// ok false). pre are the move-out events written before the changes.
func (c *Cache) convertSubqueryTx(e *Entry, tx *volt.Transaction, changes []int, views []*where.View, pre [][]byte) (cv converted, ok bool) {
	c.mu.Lock()
	if views == nil {
		views = e.sq.views
	}
	upsert := false
	if ms := e.sq.moveInSnap; ms != nil {
		if tx.CommitLSN < e.sq.moveInLSN {
			upsert = ms.Visible(tx.Xid)
		} else {
			e.sq.moveInSnap = nil
		}
	}
	if views == nil {
		// Converted against the views once the snapshot reads them
		// (setSubquerySnapshot).
		e.sq.raw = append(e.sq.raw, rawTxn{tx: tx, changes: changes})
	}
	c.mu.Unlock()
	if views == nil {
		return cv, false
	}
	msgs, err := e.convertSubquery(tx, changes, views, upsert)
	if err != nil {
		return converted{e: e, err: err}, true
	}
	if len(msgs) == 0 && len(pre) == 0 {
		return cv, false
	}
	entries, d := frame(e, tx, msgs)
	d.ops += int64(len(pre))
	return converted{e: e, entries: entries, pre: pre, delta: d}, true
}

// startMoveIns runs e's move-ins mis of st's transaction (whose own
// entries are written) on a goroutine of their own, and then e's
// transactions queued meanwhile; the transaction is handled once they
// are done.
func (c *Cache) startMoveIns(e *Entry, st *txState, mis []sqMoveIn) {
	c.mu.Lock()
	e.sq.moving = true
	st.pending++
	c.mu.Unlock()
	c.wg.Add(1) // the calling worker is in c.wg too: Close waits for both
	go c.moveInLoop(e, sqWork{st: st, moveIns: mis})
}

// moveInLoop runs w (its changes are written already) and then the work
// e's later transactions queued while it ran, in order, until the queue
// is empty.
func (c *Cache) moveInLoop(e *Entry, w sqWork) {
	defer c.wg.Done()
	for {
		c.runSqWork(e, w)
		c.mu.Lock()
		w.st.pending--
		c.completeLocked()
		if len(e.sq.queue) == 0 {
			e.sq.moving = false
			e.sq.queue = nil
			c.mu.Unlock()
			return
		}
		w = e.sq.queue[0]
		e.sq.queue[0] = sqWork{}
		e.sq.queue = e.sq.queue[1:]
		c.mu.Unlock()
	}
}

// runSqWork writes w's changes to e's log and runs its move-ins (as
// runJob does for one shape).
func (c *Cache) runSqWork(e *Entry, w sqWork) {
	if e.IsGone() {
		return
	}
	tx := w.st.tx
	if len(w.changes) > 0 || len(w.pre) > 0 {
		var conv []converted
		if cv, ok := c.convertSubqueryTx(e, tx, w.changes, w.views, w.pre); ok {
			conv = append(conv, cv)
		}
		work := c.appendConverted(tx, conv)
		c.mu.Lock()
		c.settleLocked(work)
		c.mu.Unlock()
	}
	if len(w.moveIns) > 0 && !e.IsGone() {
		c.runMoveIns(e, tx, w.moveIns)
	}
}

// runMoveIns runs e's move-in queries for tx in order and writes each
// splice; a failure removes the shape (its clients refetch).
func (c *Cache) runMoveIns(e *Entry, tx *volt.Transaction, mis []sqMoveIn) {
	for _, mi := range mis {
		n, err := c.moveIn(e, tx, mi)
		c.mu.Lock()
		switch {
		case e.IsGone():
		case err != nil:
			c.Logger.Warn("move-in query failed", "handle", e.Handle, "err", err)
			c.removeLocked(e, "move-in failed")
		default:
			e.rows += n
			e.ops += n + 2
			c.dirty[e] = struct{}{}
		}
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// moveInSlots returns the semaphore bounding the move-in queries running
// at once: half the snapshot pool (at least one), so that new shapes'
// snapshots still find connections.
func (c *Cache) moveInSlots(ps *postgres.Snapshotter) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sqSlots == nil {
		c.sqSlots = make(chan struct{}, max(1, int(ps.Pool.Config().MaxConns)/2))
	}
	return c.sqSlots
}

// snapshotTx begins a REPEATABLE READ transaction (the display settings)
// once its snapshot holds what holds asks for, and returns it with the
// snapshot and the WAL insert position; what names it in errors.
func snapshotTx(ctx context.Context, ps *postgres.Snapshotter, what string, holds func(volt.Snapshot) bool) (pgtx pgx.Tx, snap volt.Snapshot, lsn uint64, err error) {
	err = untilSeen(ctx, what, func() error {
		if pgtx, err = ps.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}); err != nil {
			return fmt.Errorf("begin %s: %w", what, err)
		}
		snap, lsn, err = moveInSnapshot(ctx, pgtx)
		if err == nil && holds(snap) {
			return nil
		}
		_ = pgtx.Rollback(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		return errSnapshotUnseen
	})
	if err != nil {
		return nil, volt.Snapshot{}, 0, err
	}
	return pgtx, snap, lsn, nil
}

// moveInSnapshot applies the display settings in pgtx and reads its
// snapshot and the WAL insert position.
func moveInSnapshot(ctx context.Context, pgtx pgx.Tx) (volt.Snapshot, uint64, error) {
	if _, err := pgtx.Exec(ctx, displaySettings); err != nil {
		return volt.Snapshot{}, 0, fmt.Errorf("move-in settings: %w", err)
	}
	var snapText string
	var lsn uint64
	if err := pgtx.QueryRow(ctx, "SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn() - '0/0'::pg_lsn").Scan(&snapText, &lsn); err != nil {
		return volt.Snapshot{}, 0, fmt.Errorf("move-in snapshot: %w", err)
	}
	snap, err := parseSnapshot(snapText)
	return snap, lsn, err
}

// moveIn runs one move-in query (subqueries.md §7.4) in a REPEATABLE
// READ transaction: the rows in the shape with the views after and not
// with the views before, with their metadata against the views after.
// It appends the move-in event, the rows (is_move_in) and, when there
// are rows, a snapshot-end with the query's snapshot. Transactions the
// query's snapshot holds that come later are converted with the views
// after and so only repeat what the rows hold (a repeated insert is an
// upsert for clients).
//
// The query is one round trip (Snapshotter.QueryOnce: BEGIN, settings
// and snapshot identity, query, COMMIT sent together); a snapshot that
// does not hold tx yet is dropped with its rows and taken again
// (untilSeen). Postgres sends a commit to replication before the
// transaction is visible to new snapshots (a moment; as long as a
// synchronous standby takes to confirm it): a query in between would
// read the rows without the transaction's changes, which were written
// with the views before, so a change to a row moving in would be lost.
func (c *Cache) moveIn(e *Entry, tx *volt.Transaction, mi sqMoveIn) (int64, error) {
	s := e.Shape
	plan := e.sq.plan
	ps, ok := c.Snapshotter.(*postgres.Snapshotter)
	if !ok {
		return 0, errors.New("shapes with subqueries need a postgres.Snapshotter")
	}
	var args [][]*string
	// params numbers the views of the dependencies used (every one when
	// used is nil); the others stay 0, as the query must not name them.
	params := func(views []*where.View, used []bool) where.ViewParams {
		vp := make(where.ViewParams, len(views))
		for d, v := range views {
			if used != nil && !used[d] {
				continue
			}
			vp[d] = len(args) + 1
			args = append(args, v.Arrays()...)
		}
		return vp
	}
	before := params(mi.before, nil)
	after := params(mi.after, plan.MoveInAfterDeps(mi.d))
	var cols []string
	for _, i := range s.SnapshotColumns() {
		cols = append(cols, postgres.QuoteIdent(s.Table.Columns[i].Name))
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + quoteQualified(s.Table.Schema, s.Table.Name) +
		" WHERE " + plan.MoveInWhereSQL(mi.d, before, after)

	ctx := c.ctx
	slots := c.moveInSlots(ps)
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if h := c.sqMoveInHook; h != nil {
		h(e)
	}
	var si postgres.SnapshotInfo
	var rows [][]byte
	err := untilSeen(ctx, fmt.Sprintf("move-in (transaction %d)", tx.Xid), func() error {
		rows = rows[:0]
		return ps.QueryOnce(ctx, sql, args, func(got postgres.SnapshotInfo) error {
			if !got.Visible(tx.Xid) {
				return errSnapshotUnseen
			}
			si = got
			return nil
		}, func(vals [][]byte) error {
			row, _, err := s.MoveInRow(vals, mi.after, e.sq.prefix)
			if err != nil {
				return fmt.Errorf("move-in row metadata: %w", err)
			}
			rows = append(rows, row)
			return nil
		})
	})
	<-slots
	if err != nil {
		return 0, fmt.Errorf("move-in query: %w", err)
	}
	// The transactions after tx that this snapshot holds are already in
	// the rows; they reach the log after them (moveInLoop) as upserts, so
	// a row the client lacks arrives whole.
	snap := si.Snapshot
	c.mu.Lock()
	e.sq.moveInSnap, e.sq.moveInLSN = &snap, si.LSN
	c.mu.Unlock()
	msgs := [][]byte{moveEvent("move-in", e.sq, mi.d, mi.vals, tx.Xid)}
	msgs = append(msgs, rows...)
	if len(rows) > 0 {
		msgs = append(msgs, shape.SnapshotEnd(snap))
	}
	l, err := e.acquire()
	if err != nil {
		return 0, err
	}
	defer e.release()
	at := l.Latest()
	if at.LSN == 0 {
		at = volt.Offset{LSN: 1, Op: 0}
	} else {
		at.Op++
	}
	entries := make([]shapelog.Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = shapelog.Entry{Offset: at, JSON: m}
		at.Op++
	}
	return int64(len(rows)), e.append(l, entries)
}

// displaySettings formats values as snapshots do (postgres.Snapshotter).
const displaySettings = "SET LOCAL bytea_output = 'hex'; SET LOCAL DateStyle = 'ISO, DMY'; SET LOCAL TimeZone = 'UTC'; " +
	"SET LOCAL extra_float_digits = 1; SET LOCAL IntervalStyle = 'iso_8601'"

// parseSnapshot parses pg_current_snapshot()'s text form xmin:xmax:xip,….
func parseSnapshot(s string) (volt.Snapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return volt.Snapshot{}, fmt.Errorf("unexpected pg_current_snapshot() %q", s)
	}
	var snap volt.Snapshot
	var err error
	if snap.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return snap, fmt.Errorf("snapshot xmin %q: %w", s, err)
	}
	if snap.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return snap, fmt.Errorf("snapshot xmax %q: %w", s, err)
	}
	if parts[2] != "" {
		for _, p := range strings.Split(parts[2], ",") {
			x, err := strconv.ParseUint(p, 10, 64)
			if err != nil {
				return snap, fmt.Errorf("snapshot xip %q: %w", s, err)
			}
			snap.Xip = append(snap.Xip, x)
		}
	}
	return snap, nil
}
