package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/voltsync/volt"
)

// OptimisticOptions configure an Optimistic. Writer and Shapes are
// required.
type OptimisticOptions struct {
	// Writer sends the transactions.
	Writer *Writer
	// Shapes are the shapes the local changes are shown in. Create the
	// Optimistic before running them, or at least before they are up to
	// date, so that it sees every batch.
	Shapes []*Shape
	// Receipts, optional, is a shape of the Writer's receipts
	// (Client.ReceiptShape). With it, a transaction whose rows fall outside a
	// shape leaves the overlay once that shape has passed the
	// transaction's commit (see Writer.WriteAndAwait); without it, such a
	// transaction stays until a later up-to-date reports a position past
	// the result's lsn, which on a quiet server can take until the next
	// commit.
	Receipts *Shape
	// Rows, optional, says which rows of which shapes a mutation changes.
	// The default matches the mutation's table with each shape's table and
	// builds the row key from the primary key values (Key, and Values for
	// inserts), written as Postgres prints them: uuids and integers as
	// text or numbers, for instance. Named mutations change no row that
	// the default can see.
	Rows func(m volt.Mutation) []RowRef
}

// RowRef names a row of a shape.
type RowRef struct {
	Shape *Shape
	Key   string
}

// Optimistic is pattern 2, optimistic state in memory: it shows local
// transactions at once over the rows of one or more shapes, sends them
// with a Writer, and keeps each one on top until the server's copy of it
// has arrived.
//
// Apply adds a transaction to the overlay before sending it; Rows and Get
// read the shape's rows with the pending transactions applied on top, in
// order (inserts and updates set columns, deletes hide the row). A
// server change to a row that a pending transaction changes shows under
// it: the local columns stay on top until the transaction is confirmed.
//
// A transaction leaves the overlay when:
//   - the server accepted it and its echo is in every shape it touches:
//     a change with its txid followed by an up-to-date, or a snapshot that
//     includes it, or an up-to-date past its commit (see Receipts). At that
//     moment the shape's rows already hold the write, so a locally
//     inserted row never vanishes and comes back;
//   - the server rejected it: it is rolled back and OnRollback's functions
//     are told why. Later transactions of the same request that touch the
//     same rows are rejected "dependent" by the server, so they roll back
//     too, each with its own event;
//   - the Writer dropped it with an error (a *SeqError or a request
//     refused as a whole): it is rolled back with a result of status
//     "rejected" and code "client_error" whose Message is the error.
//
// A transaction whose Apply returned an error (context ended, 401) stays
// in the overlay and in the Writer's queue; Flush or the next Apply sends
// it.
//
// The rows come from a copy that the Optimistic keeps of each shape,
// updated only at up-to-date messages: readers see consistent states of
// the shape, and across a must-refetch they keep the old rows until the
// new ones are complete. That costs a second copy of the rows.
type Optimistic struct {
	w        *Writer
	opts     OptimisticOptions
	receipts *receiptWatch

	mu      sync.Mutex
	mirrors map[*Shape]*mirror
	pending []*optTx
	// observe, if set, is called with mu held after every change of the
	// overlay or of the rows under it (tests).
	observe func()

	subMu     sync.Mutex
	subs      map[int]func()
	rollbacks map[int]func(int64, volt.MutationResult)
	nextSub   int
}

// mirror is the Optimistic's copy of one shape, as of its last
// up-to-date.
type mirror struct {
	sh     *Shape
	prefix string // key prefix of the shape's table; "" if unknown
	unsub  func()

	rows   map[string]Row
	staged []*Change      // changes since the last up-to-date
	resync map[string]Row // after a must-refetch, until the next up-to-date
	txids  txidTracker    // as of rows
	lsn    uint64         // global_last_seen_lsn as of rows
}

// optTx is a pending local transaction.
type optTx struct {
	t        *wtx
	ops      []overlayOp
	mirrors  []*mirror
	accepted bool
	res      volt.MutationResult
	resLSN   uint64
}

// overlayOp is one mutation as the overlay applies it.
type overlayOp struct {
	m    *mirror
	key  string
	op   string // volt.OpInsert, …
	vals Row
}

// NewOptimistic returns an Optimistic over opts.Shapes. Call Close when
// done with it.
func NewOptimistic(opts OptimisticOptions) (*Optimistic, error) {
	if opts.Writer == nil || len(opts.Shapes) == 0 {
		return nil, errors.New("client: OptimisticOptions needs a Writer and at least one Shape")
	}
	o := &Optimistic{w: opts.Writer, opts: opts, mirrors: map[*Shape]*mirror{},
		subs: map[int]func(){}, rollbacks: map[int]func(int64, volt.MutationResult){}}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, sh := range opts.Shapes {
		if o.mirrors[sh] != nil {
			continue
		}
		m := &mirror{sh: sh}
		if schema, name, err := parseTableName(sh.stream.opts.Table); err == nil && sh.stream.opts.Table != "" {
			m.prefix = keyPrefix(schema, name)
		}
		m.unsub = sh.Subscribe(func(sc ShapeChange) { o.onShape(m, sc) })
		// Start from what the shape holds; batches applied meanwhile are
		// applied again by onShape, which changes nothing.
		sh.mu.Lock()
		m.rows = make(map[string]Row, len(sh.rows))
		for k, r := range sh.rows {
			m.rows[k] = r
		}
		m.txids.seen = map[uint32]struct{}{}
		for id := range sh.txids.seen {
			m.txids.seen[id] = struct{}{}
		}
		m.txids.order = slices.Clone(sh.txids.order)
		m.txids.snapshots = slices.Clone(sh.txids.snapshots)
		m.lsn = sh.lsn
		sh.mu.Unlock()
		o.mirrors[sh] = m
	}
	if opts.Receipts != nil {
		o.receipts = watchReceipts(opts.Receipts, opts.Writer.ClientID(), func() {
			o.mu.Lock()
			changed := o.dropEchoedLocked()
			o.mu.Unlock()
			if changed {
				o.fire()
			}
		})
	}
	return o, nil
}

// Close stops following the shapes. Pending transactions stay in the
// Writer's queue.
func (o *Optimistic) Close() {
	for _, m := range o.mirrors {
		m.unsub()
	}
	if o.receipts != nil {
		o.receipts.stop()
	}
}

// Subscribe calls fn after every change of what Rows and Get return: a
// local transaction applied, confirmed or rolled back, or a shape update.
// fn runs on the goroutine that caused the change, without locks held; it
// may read the Optimistic. The returned function unsubscribes.
func (o *Optimistic) Subscribe(fn func()) (unsubscribe func()) {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	o.nextSub++
	id := o.nextSub
	o.subs[id] = fn
	return func() {
		o.subMu.Lock()
		defer o.subMu.Unlock()
		delete(o.subs, id)
	}
}

// OnRollback calls fn for every transaction rolled back, with its seq and
// the server's result (Code and Message say why), before the subscribers
// of Subscribe hear of the change. The returned function unsubscribes.
func (o *Optimistic) OnRollback(fn func(seq int64, res volt.MutationResult)) (unsubscribe func()) {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	o.nextSub++
	id := o.nextSub
	o.rollbacks[id] = fn
	return func() {
		o.subMu.Lock()
		defer o.subMu.Unlock()
		delete(o.rollbacks, id)
	}
}

func (o *Optimistic) fire() {
	o.subMu.Lock()
	fns := make([]func(), 0, len(o.subs))
	for _, fn := range o.subs {
		fns = append(fns, fn)
	}
	o.subMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

func (o *Optimistic) fireRollback(seq int64, res volt.MutationResult) {
	o.subMu.Lock()
	fns := make([]func(int64, volt.MutationResult), 0, len(o.rollbacks))
	for _, fn := range o.rollbacks {
		fns = append(fns, fn)
	}
	o.subMu.Unlock()
	for _, fn := range fns {
		fn(seq, res)
	}
}

// Apply shows the transaction muts at once and sends it. It returns the
// server's result like Writer.Write (a rejection also as a
// *RejectedError); by then a rejected transaction has been rolled back, and an accepted one stays shown until its echo.
func (o *Optimistic) Apply(ctx context.Context, muts []volt.Mutation) (volt.MutationResult, error) {
	p := &optTx{}
	o.mu.Lock()
	if err := o.overlayLocked(p, muts); err != nil {
		o.mu.Unlock()
		return volt.MutationResult{}, err
	}
	t, err := o.w.enqueue(ctx, muts, func(res volt.MutationResult, err error) { o.settle(p, res, err) })
	if err != nil {
		o.mu.Unlock()
		return volt.MutationResult{}, err
	}
	p.t = t
	o.pending = append(o.pending, p)
	o.observeLocked()
	o.mu.Unlock()
	o.fire()
	return rejection(o.w.await(ctx, t))
}

// overlayLocked computes the overlay of muts (o.mu held).
func (o *Optimistic) overlayLocked(p *optTx, muts []volt.Mutation) error {
	for _, mut := range muts {
		var op string
		switch mut.Op {
		case volt.OpInsert:
			op = volt.OpInsert
		case volt.OpUpdate:
			op = volt.OpUpdate
		case volt.OpDelete:
			op = volt.OpDelete
		default:
			if o.opts.Rows == nil {
				continue // a named mutation: nothing to show
			}
		}
		var refs []RowRef
		if o.opts.Rows != nil {
			refs = o.opts.Rows(mut)
		} else {
			var err error
			if refs, err = o.defaultRows(mut); err != nil {
				return err
			}
		}
		for _, ref := range refs {
			m := o.mirrors[ref.Shape]
			if m == nil {
				return errors.New("client: Optimistic: RowRef names a shape it does not follow")
			}
			schema := m.sh.stream.Schema()
			vals := Row{}
			for k, v := range mut.Values {
				c, ok := schema[k]
				vals[k] = typedValue(c, ok, v)
			}
			if op == volt.OpInsert {
				for k, v := range mut.Key {
					c, ok := schema[k]
					vals[k] = typedValue(c, ok, v)
				}
			}
			if op == "" {
				op = volt.OpUpdate
			}
			p.ops = append(p.ops, overlayOp{m: m, key: ref.Key, op: op, vals: vals})
			if !slices.Contains(p.mirrors, m) {
				p.mirrors = append(p.mirrors, m)
			}
		}
	}
	return nil
}

// defaultRows finds the rows of mut in the shapes of its table.
func (o *Optimistic) defaultRows(mut volt.Mutation) ([]RowRef, error) {
	schema, name, err := parseTableName(mut.Table)
	if err != nil {
		return nil, fmt.Errorf("client: Optimistic: table %q: %w", mut.Table, err)
	}
	prefix := keyPrefix(schema, name)
	var refs []RowRef
	for _, sh := range o.opts.Shapes {
		m := o.mirrors[sh]
		if m.prefix != prefix || slices.ContainsFunc(refs, func(r RowRef) bool { return r.Shape == sh }) {
			continue
		}
		s := sh.stream.Schema()
		if s == nil {
			return nil, fmt.Errorf("client: Optimistic: the columns of shape %s are not known yet: wait for its first response", sh.stream.opts.Table)
		}
		key, ok := rowKey(prefix, primaryKey(s), s, mut)
		if !ok {
			return nil, fmt.Errorf("client: Optimistic: %s on %s lacks a primary key value", mut.Op, mut.Table)
		}
		refs = append(refs, RowRef{Shape: sh, Key: key})
	}
	return refs, nil
}

// settle takes the Writer's decision about p.
func (o *Optimistic) settle(p *optTx, res volt.MutationResult, err error) {
	o.mu.Lock()
	if !slices.Contains(o.pending, p) {
		o.mu.Unlock()
		return
	}
	rolledBack := false
	switch {
	case err != nil:
		res = volt.MutationResult{Seq: p.t.seq, Status: volt.StatusRejected, Code: "client_error", Message: err.Error()}
		rolledBack = true
	case res.Status != volt.StatusAccepted:
		rolledBack = true
	}
	if rolledBack {
		o.removeLocked(p)
	} else {
		p.accepted, p.res = true, res
		p.resLSN, _ = strconv.ParseUint(res.LSN, 10, 64)
		if o.echoedLocked(p) {
			o.removeLocked(p)
		}
	}
	o.observeLocked()
	o.mu.Unlock()
	if rolledBack {
		o.fireRollback(res.Seq, res)
	}
	o.fire()
}

func (o *Optimistic) removeLocked(p *optTx) {
	o.pending = slices.DeleteFunc(o.pending, func(q *optTx) bool { return q == p })
	if o.receipts != nil {
		o.receipts.forget(p.res.Seq)
	}
}

// echoedLocked reports whether p is accepted and in every shape it
// touches, as of the mirrors.
func (o *Optimistic) echoedLocked(p *optTx) bool {
	if !p.accepted {
		return false
	}
	bound := p.resLSN
	if o.receipts != nil {
		if l := o.receipts.commitLSN(p.res.Seq); l > 0 && (bound == 0 || l < bound) {
			bound = l
		}
	}
	for _, m := range p.mirrors {
		if p.res.Txid != 0 && m.txids.visible(uint32(p.res.Txid)) {
			continue
		}
		if bound > 0 && m.lsn >= bound {
			continue
		}
		return false
	}
	return true
}

// dropEchoedLocked drops the transactions whose echo has arrived.
func (o *Optimistic) dropEchoedLocked() bool {
	n := len(o.pending)
	o.pending = slices.DeleteFunc(o.pending, func(p *optTx) bool {
		if o.echoedLocked(p) {
			if o.receipts != nil {
				o.receipts.forget(p.res.Seq)
			}
			return true
		}
		return false
	})
	return len(o.pending) != n
}

// onShape follows one batch of a shape.
func (o *Optimistic) onShape(m *mirror, sc ShapeChange) {
	o.mu.Lock()
	if sc.MustRefetch {
		m.resync, m.staged = map[string]Row{}, nil
		m.txids.refetch()
	}
	for _, c := range sc.Changes {
		if m.resync != nil {
			applyChangeTo(m.resync, c)
		} else {
			m.staged = append(m.staged, c)
		}
		m.txids.change(c.Txids)
	}
	for _, mv := range sc.Moves {
		m.txids.change(mv.Txids)
	}
	if !sc.UpToDate {
		o.mu.Unlock()
		return
	}
	if m.resync != nil {
		m.rows, m.resync = m.resync, nil
	}
	for _, c := range m.staged {
		applyChangeTo(m.rows, c)
	}
	m.staged = nil
	m.txids.upToDate()
	m.sh.mu.Lock() // Run waits for this callback: the shape is as of sc
	m.txids.snapshots = slices.Clone(m.sh.txids.snapshots)
	m.lsn = m.sh.lsn
	m.sh.mu.Unlock()
	o.dropEchoedLocked()
	o.observeLocked()
	o.mu.Unlock()
	o.fire()
}

func (o *Optimistic) observeLocked() {
	if o.observe != nil {
		o.observe()
	}
}

// applyChangeTo applies a change to rows as Shape does.
func applyChangeTo(rows map[string]Row, c *Change) {
	switch c.Operation {
	case volt.OpInsert:
		rows[c.Key] = c.Value.clone()
	case volt.OpUpdate:
		row := rows[c.Key].clone()
		for k, v := range c.Value {
			row[k] = v
		}
		rows[c.Key] = row
	case volt.OpDelete:
		delete(rows, c.Key)
	}
}

// viewLocked returns the rows of m with the overlay applied (o.mu held).
// Rows of the result are shared: callers clone what they hand out.
func (o *Optimistic) viewLocked(m *mirror) map[string]Row {
	view := make(map[string]Row, len(m.rows))
	for k, r := range m.rows {
		view[k] = r
	}
	for _, p := range o.pending {
		for _, op := range p.ops {
			if op.m == m {
				applyOp(view, op)
			}
		}
	}
	return view
}

func applyOp(view map[string]Row, op overlayOp) {
	switch op.op {
	case volt.OpInsert:
		row := view[op.key].clone()
		for k, v := range op.vals {
			row[k] = v
		}
		view[op.key] = row
	case volt.OpUpdate:
		if old, ok := view[op.key]; ok {
			row := old.clone()
			for k, v := range op.vals {
				row[k] = v
			}
			view[op.key] = row
		}
	case volt.OpDelete:
		delete(view, op.key)
	}
}

// Rows returns the rows of sh with the pending local transactions on top,
// ordered by key. sh must be one of the Optimistic's shapes.
func (o *Optimistic) Rows(sh *Shape) []Row {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.mirrors[sh]
	if m == nil {
		return nil
	}
	view := o.viewLocked(m)
	keys := make([]string, 0, len(view))
	for k := range view {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rows := make([]Row, len(keys))
	for i, k := range keys {
		rows[i] = view[k].clone()
	}
	return rows
}

// Get returns the row of sh with key, pending local transactions applied.
func (o *Optimistic) Get(sh *Shape, key string) (Row, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.mirrors[sh]
	if m == nil {
		return nil, false
	}
	view := map[string]Row{}
	if r, ok := m.rows[key]; ok {
		view[key] = r
	}
	for _, p := range o.pending {
		for _, op := range p.ops {
			if op.m == m && op.key == key {
				applyOp(view, op)
			}
		}
	}
	r, ok := view[key]
	return r.clone(), ok
}

// Key returns the key that sh gives the row m changes, by the default
// rule of OptimisticOptions.Rows; ok is false when m's table is not sh's
// or sh's columns are not known yet.
func (o *Optimistic) Key(sh *Shape, m volt.Mutation) (key string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	refs, err := o.defaultRows(m)
	if err != nil {
		return "", false
	}
	for _, r := range refs {
		if r.Shape == sh {
			return r.Key, true
		}
	}
	return "", false
}

// Pending returns the number of local transactions shown but not yet
// confirmed or rolled back.
func (o *Optimistic) Pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending)
}
