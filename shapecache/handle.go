package shapecache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
	"github.com/voltsync/volt/where"
)

// HandleTransaction routes one replicated transaction into the logs of the
// shapes it affects. Transactions are handed over in commit order, by one
// goroutine (the replication reader); ones already routed (replayed after
// a reconnect) are skipped.
//
// Routing (the index lookup, truncations and relation checks) runs here
// under the cache's lock; converting the changes for each shape (its where
// clause, its messages) and appending them run on the evaluation pool, one
// job per table, so that one table's costly shapes do not hold up other
// tables' changes. A transaction counts as handled (LastProcessedLSN, the
// commit log, and DurableLSN at the next flush) once its jobs and those of
// every earlier transaction are done. At most maxInflightTxns transactions
// are in flight; past that HandleTransaction waits.
func (c *Cache) HandleTransaction(ctx context.Context, tx *volt.Transaction) error {
	select {
	case c.inflight <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
	t := *tx // the header is the caller's; the changes are not modified
	st := &txState{tx: &t}
	c.mu.Lock()
	var jobs map[uint32]*tableJob
	if t.CommitLSN > c.routed || t.CommitLSN == 0 {
		jobs = c.routeLocked(st)
		c.routed = max(c.routed, t.CommitLSN)
	}
	st.pending = len(jobs)
	c.txns = append(c.txns, st)
	c.completeLocked()
	c.mu.Unlock()
	for oid, j := range jobs {
		if !c.pool.submit(oid, j) {
			return ErrClosed
		}
	}
	return nil
}

// ErrClosed is returned by HandleTransaction once the cache is closing.
var ErrClosed = errors.New("shape cache is closed")

// maxInflightTxns bounds the transactions routed but not yet handled.
const maxInflightTxns = 1024

// txState is a transaction on its way through the evaluation pool.
type txState struct {
	tx      *volt.Transaction
	pending int // jobs not done yet (guarded by Cache.mu)
}

// tableJob is one table's part of a transaction: the shapes its changes
// may affect (in the order first routed to) and, per shape, the indexes of
// those changes in the transaction.
type tableJob struct {
	st      *txState
	shapes  []*Entry
	changes map[*Entry][]int
	// For shapes with subqueries (subquery.go): the views the
	// transaction's changes are converted with, and the control messages
	// (move-out events) written before them.
	views   map[*Entry][]*where.View
	pre     map[*Entry][][]byte
	moveIns map[*Entry][]sqMoveIn
}

// completeLocked marks the transactions at the head of the line handled
// while their jobs are all done.
func (c *Cache) completeLocked() {
	for len(c.txns) > 0 && c.txns[0].pending == 0 {
		c.handledLocked(c.txns[0].tx)
		c.txns[0] = nil
		c.txns = c.txns[1:]
		<-c.inflight
	}
}

// appendWork is one shape's part of a transaction, to append outside the
// cache's lock.
type appendWork struct {
	e        *Entry
	entries  []shapelog.Entry
	pre      [][]byte
	delta    delta
	appended bool
	replayed bool
	err      error
}

// routeLocked finds the shapes each change of st's transaction may affect
// and groups them into one job per table. Truncations and relation changes
// remove shapes here, before any later transaction is routed.
func (c *Cache) routeLocked(st *txState) map[uint32]*tableJob {
	jobs := map[uint32]*tableJob{}
	var moves map[*Entry][]sqMove
	for i := range st.tx.Changes {
		ch := &st.tx.Changes[i]
		if ch.Kind == volt.ChangeTruncate {
			for _, rel := range ch.Truncated {
				c.rotateRelation(rel.ID, "truncate")
			}
			continue
		}
		c.checkRelationLocked(ch.Relation)
		if ch.Relation != nil && c.sqByTable[ch.Relation.ID] != nil {
			if moves == nil {
				moves = map[*Entry][]sqMove{}
			}
			c.routeSubqueryLocked(st.tx, ch, moves)
		}
		c.index.MatchChange(ch, func(e *Entry) {
			oid := e.Shape.Table.OID
			j := jobs[oid]
			if j == nil {
				j = &tableJob{st: st, changes: map[*Entry][]int{}}
				jobs[oid] = j
			}
			if _, seen := j.changes[e]; !seen {
				j.shapes = append(j.shapes, e)
			}
			j.changes[e] = append(j.changes[e], i)
		})
	}
	if moves != nil || c.sqByTable != nil {
		c.finishSubqueryTxLocked(st, jobs, moves)
	}
	return jobs
}

// runJob converts a table's changes for each of its shapes and appends
// them (on a pool worker). A shape whose where clause fails on a row for
// its cost (where.ErrTooCostly) is removed: its clients get 409, and
// replication goes on for everyone else.
//
// A subquery shape's move-ins run off this worker (startMoveIns), after
// the transaction's own entries are written: the table's later
// transactions go on for its other shapes, while this shape's wait in its
// queue (sqState.queue) until the splice, so that they reach its log
// after it (subqueries.md §7.4, §7.5).
func (c *Cache) runJob(j *tableJob) {
	tx := j.st.tx
	var conv []converted
	var queued map[*Entry]bool
	for _, e := range j.shapes {
		if e.IsGone() {
			continue
		}
		if e.sq != nil {
			if c.queueIfMoving(e, j) {
				if queued == nil {
					queued = map[*Entry]bool{}
				}
				queued[e] = true
				continue
			}
			if cv, ok := c.convertSubqueryTx(e, tx, j.changes[e], j.views[e], j.pre[e]); ok {
				conv = append(conv, cv)
			}
			continue
		}
		var msgs []shape.Message
		var err error
		for _, i := range j.changes[e] {
			var m []shape.Message
			if m, err = e.Shape.Convert(&tx.Changes[i], uint64(2*i)); err != nil {
				break
			}
			msgs = append(msgs, m...)
		}
		if err != nil {
			conv = append(conv, converted{e: e, err: err})
		} else if len(msgs) > 0 {
			entries, d := frame(e, tx, msgs)
			conv = append(conv, converted{e: e, entries: entries, delta: d})
		}
	}
	work := c.appendConverted(tx, conv)
	for e, mis := range j.moveIns {
		if len(mis) > 0 && !queued[e] && !e.IsGone() {
			c.startMoveIns(e, j.st, mis)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleLocked(work)
	j.st.pending--
	c.completeLocked()
}

// converted is a shape's part of a transaction as log entries (or the
// error converting it).
type converted struct {
	e       *Entry
	entries []shapelog.Entry
	pre     [][]byte
	delta   delta
	err     error
}

// appendConverted appends the converted entries of tx to their shapes'
// logs and returns what settleLocked must record; a shape whose
// conversion failed is removed.
func (c *Cache) appendConverted(tx *volt.Transaction, conv []converted) []appendWork {
	var work []appendWork
	c.mu.Lock()
	for _, cv := range conv {
		e := cv.e
		switch {
		case e.IsGone():
		case errors.Is(cv.err, shape.ErrSchemaChanged):
			c.removeLocked(e, "schema changed")
		case cv.err != nil:
			// The error may quote the row's value: the log gets it redacted.
			c.Logger.Warn("where clause failed on a replicated row", "handle", e.Handle, "where", e.Shape.Def.Where, "err", where.Redacted(cv.err))
			c.removeLocked(e, "where clause cannot be evaluated: "+where.Redacted(cv.err))
		case e.snap == nil:
			// The snapshot's identity is not known yet: setSnapshot
			// appends these once it is (minus what the snapshot holds).
			e.pending = append(e.pending, bufferedTxn{lsn: tx.CommitLSN, xid: tx.Xid, entries: cv.entries, delta: cv.delta})
		default:
			work = append(work, appendWork{e: e, entries: cv.entries, pre: cv.pre, delta: cv.delta})
		}
	}
	c.mu.Unlock()
	for i := range work {
		w := &work[i]
		w.appended, w.replayed, w.err = w.e.appendLive(w.entries, tx, w.pre)
	}
	return work
}

// settleLocked records the appends of work (c.mu held).
func (c *Cache) settleLocked(work []appendWork) {
	for i := range work {
		w := &work[i]
		switch {
		case w.e.IsGone():
		case w.err != nil && c.ctx.Err() != nil:
			// The cache is closing: the transaction is not confirmed to
			// the slot, so it is sent again next time; the shape stays.
		case w.err != nil:
			// A log that cannot be opened or written cannot be continued:
			// drop the shape (its clients re-sync through 409) rather
			// than stop replication for every other shape.
			c.Logger.Error("append to shape log", "handle", w.e.Handle, "err", w.err)
			c.removeLocked(w.e, "log cannot be written")
		case w.replayed:
			c.dirty[w.e] = struct{}{}
		case w.appended:
			w.e.rows += w.delta.rows
			w.e.ops += w.delta.ops
			c.dirty[w.e] = struct{}{}
			c.maybeCompactLocked(w.e)
		}
	}
}

// checkRelationLocked removes the shapes a relation's new definition does
// not fit, when the relation is seen for the first time in this stream or
// after a change of definition. Routing only shows a change to the shapes
// it can match, so the others learn of the change here.
func (c *Cache) checkRelationLocked(rel *volt.Relation) {
	if rel == nil || c.relSeen[rel.ID] == rel {
		return
	}
	if c.relSeen == nil {
		c.relSeen = map[uint32]*volt.Relation{}
	}
	c.relSeen[rel.ID] = rel
	for e := range c.byRel[rel.ID] {
		if e.Shape.CheckRelation(rel) != nil {
			c.removeLocked(e, "schema changed")
		}
	}
}

func (c *Cache) handledLocked(tx *volt.Transaction) {
	c.commits.note(tx.Xid, tx.CommitLSN)
	if tx.CommitLSN > c.lastProcessed.Load() {
		c.lastProcessed.Store(tx.CommitLSN)
	}
	if tx.EndLSN > c.handled {
		c.handled = tx.EndLSN
	}
	c.requestFlush()
}

func (c *Cache) requestFlush() {
	select {
	case c.flushReq <- struct{}{}:
	default:
	}
}

// frame renders msgs as e's log entries of tx.
func frame(e *Entry, tx *volt.Transaction, msgs []shape.Message) ([]shapelog.Entry, delta) {
	entries := make([]shapelog.Entry, len(msgs))
	var d delta
	for i, m := range msgs {
		entries[i] = shapelog.Entry{
			Offset: volt.Offset{LSN: tx.CommitLSN, Op: m.Op},
			JSON:   e.Shape.Frame(m, tx.CommitLSN, tx.Xid, i == len(msgs)-1),
		}
		d.add(m.Kind())
	}
	return entries, d
}

// delta is how a transaction changes a shape's row and message counts.
type delta struct{ rows, ops int64 }

func (d *delta) add(kind string) {
	d.ops++
	switch kind {
	case "insert":
		d.rows++
	case "delete":
		d.rows--
	}
}

func (c *Cache) rotateRelation(oid uint32, why string) {
	for e := range c.byRel[oid] {
		c.removeLocked(e, why)
	}
	for e := range c.sqByTable[oid] {
		c.removeLocked(e, why+" (a subquery's table)")
	}
}

// flushLoop makes appended entries durable and then advances DurableLSN.
func (c *Cache) flushLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.flushReq:
		}
		c.flush()
	}
}

func (c *Cache) flush() {
	// One flush at a time: a flush that finished early must not move
	// DurableLSN past the logs an earlier one is still syncing, and a
	// caller's flush returns only once what was pending is durable.
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	target := c.handled
	dirty := make([]*Entry, 0, len(c.dirty))
	for e := range c.dirty {
		dirty = append(dirty, e)
	}
	clear(c.dirty)
	completed := c.completed
	c.completed = nil
	c.mu.Unlock()
	if err := c.syncLogs(dirty); err != nil {
		// Not durable: keep the slot where it is (the transactions will be
		// replayed after a restart) and keep these logs dirty, so no later
		// flush advances past them either.
		c.Logger.Error("sync shape logs", "err", err)
		c.mu.Lock()
		for _, d := range dirty {
			c.dirty[d] = struct{}{}
		}
		c.completed = append(c.completed, completed...)
		c.mu.Unlock()
		return
	}
	if err := c.catalogue(completed); err != nil {
		c.Logger.Error("add shapes to the catalog", "err", err)
		c.mu.Lock()
		c.completed = append(c.completed, completed...)
		c.mu.Unlock()
		return
	}
	if target > c.durable.Load() {
		c.durable.Store(target)
	}
}

// syncLogs fsyncs the given logs, several at a time (the disk serves
// parallel fsyncs far faster than serial ones).
func (c *Cache) syncLogs(entries []*Entry) error {
	return parallel(entries, func(e *Entry) error {
		if e.IsGone() {
			return nil
		}
		if err := e.sync(); err != nil && !e.IsGone() {
			return fmt.Errorf("shape %s: %w", e.Handle, err)
		}
		return nil
	})
}

// catalogue makes newly completed shapes durable and adds them to the
// catalog: their snapshots and directories (in parallel), then the store
// directory, then one catalog append and fsync for all of them.
func (c *Cache) catalogue(entries []*Entry) error {
	if len(entries) == 0 {
		return c.catalog.sync() // removals recorded since the last flush
	}
	if err := parallel(entries, func(e *Entry) error {
		err := e.ifOpen((*shapelog.Log).SyncSnapshot) // Close syncs it too
		if err == nil {
			err = c.Store.SyncDir(e.Handle)
		}
		if err != nil && !e.IsGone() {
			return fmt.Errorf("shape %s: %w", e.Handle, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := c.Store.SyncRoot(); err != nil {
		return err
	}
	c.mu.Lock()
	for _, e := range entries {
		if e.IsGone() {
			continue
		}
		rec := &catalogRecord{Handle: e.Handle, Table: e.Shape.Table, Definition: &e.Shape.Def, Key: e.Shape.Key, Snapshot: e.snap, Rows: e.rows, Ops: e.ops}
		rec.Terms, rec.Indexed = routeTerms(e.Shape)
		c.catalog.add(rec)
	}
	c.mu.Unlock()
	return c.catalog.sync()
}

// parallel runs fn for each entry on up to 16 goroutines and returns the
// first error.
func parallel(entries []*Entry, fn func(*Entry) error) error {
	if len(entries) <= 1 {
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for w := 0; w < min(16, len(entries)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(entries) || first.Load() != nil {
					return
				}
				if err := fn(entries[i]); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}
