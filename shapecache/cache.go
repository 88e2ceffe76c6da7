// Package shapecache owns the server's shapes: the registry of handles and
// definitions, each shape's initial snapshot, the routing of replicated
// transactions into shape logs, and the durable LSN reported back to the
// replication slot.
package shapecache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/routing"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
	"github.com/voltsync/volt/where"
)

// Inspector reads a table's definition from the database.
type Inspector interface {
	Table(ctx context.Context, schema, name string) (*volt.Table, error)
}

// Snapshotter reads a shape's initial rows.
type Snapshotter interface {
	Snapshot(ctx context.Context, q postgres.SnapshotQuery, info func(postgres.SnapshotInfo) error, row func([][]byte) error) error
}

// Publisher makes a table's changes flow through the replication stream.
type Publisher interface {
	AddTable(ctx context.Context, schema, table string) error
}

// ErrShapeGone is returned for a shape that was deleted or rotated.
var ErrShapeGone = errors.New("shape was removed")

// Cache is the registry of shapes. Open restores it from the store; it then
// consumes replicated transactions through HandleTransaction.
type Cache struct {
	Store       *shapelog.Store
	Inspector   Inspector
	Snapshotter Snapshotter
	Publisher   Publisher
	Logger      *slog.Logger
	// SchemaCheckInterval is how often tables with shapes are compared with
	// the catalog to catch DDL that no row change has announced yet.
	SchemaCheckInterval time.Duration
	// MaxOpenLogs bounds the shape logs kept open (DefaultMaxOpenLogs).
	MaxOpenLogs int
	// SnapshotConcurrency bounds the initial snapshots running at once
	// (each holds a database connection; DefaultSnapshotConcurrency).
	SnapshotConcurrency int
	// MaxQueuedSnapshots bounds the snapshots waiting for a slot; past it
	// GetOrCreate fails with ErrOverloaded (DefaultMaxQueuedSnapshots).
	MaxQueuedSnapshots int
	// ShapeTTL removes shapes that no client has read for this long (0:
	// never).
	ShapeTTL time.Duration
	// Compaction configures log compaction (see compact.go).
	Compaction Compaction
	// Metrics, when set (NewMetrics), counts shapes created and removed,
	// compactions and snapshot times.
	Metrics *Metrics
	// Subqueries lets NewShape accept where clauses with subqueries
	// (experimental, incomplete: subquery.go, issue 16).
	Subqueries bool
	// MaxSubqueryValues bounds the values (and rows of nested subqueries'
	// tables) one shape's subqueries hold: past it a new shape fails with
	// a client error and a live one is removed (0: no limit).
	MaxSubqueryValues int

	// shapes is the table state the shapes share and their handles' clock.
	shapes shape.Registry
	// slowSnapshot is how long a snapshot may take before its end is
	// logged at info level (1 s; tests lower it).
	slowSnapshot time.Duration

	mu       sync.Mutex
	byHandle map[string]*Entry
	byKey    map[string]*Entry
	byRel    map[uint32]map[*Entry]struct{}
	// relSeen is the last relation definition seen per table.
	relSeen map[uint32]*volt.Relation
	// index finds the shapes a change can affect (routing).
	index routing.Index[*Entry]
	// sqByTable lists, per table, the subquery shapes with a dependency
	// that reads it (subquery.go), for table-wide operations; sqIndex
	// files their dependencies by the keys of their inner where clauses,
	// so that a change reaches only the dependencies it can affect.
	sqByTable map[uint32]map[*Entry]struct{}
	sqIndex   routing.Index[sqRef]
	sqRel     map[uint32]*volt.Relation // relation of the last change routed to sqIndex, per table
	sqCands   []sqRef                   // reused by routeSubqueryLocked
	sqApplies int                       // dependency evaluations (tests)
	// sqSlots bounds the move-in queries running at once (half the
	// snapshot pool; moveInSlots); sqMoveInHook, if set, runs before each
	// move-in query (tests).
	sqSlots      chan struct{}
	sqMoveInHook func(e *Entry)
	dirty        map[*Entry]struct{}
	creating     map[string]*creation
	// completed holds shapes whose snapshot finished and that are not in
	// the catalog yet; the next flush adds them.
	completed []*Entry
	handled   uint64 // EndLSN of the last transaction handled
	// routed is the commit LSN of the last transaction routed; txns are
	// those routed and not handled yet, in commit order (see
	// HandleTransaction), and inflight counts them.
	routed   uint64
	txns     []*txState
	inflight chan struct{}
	pool     evalPool
	// published remembers tables already added to the publication.
	published sync.Map
	// lookups shares concurrent catalog queries of a table (lookup.go).
	lookups tableLookups

	lastProcessed atomic.Uint64 // commit LSN of the last transaction handled
	// seenBefore is where the replication slot stood at start: everything
	// before it was processed by an earlier run.
	seenBefore atomic.Uint64
	durable    atomic.Uint64

	catalog   *catalog
	logs      openLogs
	snapSlots chan struct{}
	snapsLive atomic.Int64 // snapshots queued or running
	deleter   deleter

	commits  *commitLog
	flushReq chan struct{}
	flushMu  sync.Mutex // serialises flush
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	// feed is the goroutine Follow runs (the replication reader).
	feedMu     sync.Mutex
	feedCancel context.CancelFunc
	feedDone   chan struct{}
}

// Defaults for Cache's limits.
const (
	DefaultSnapshotConcurrency = 8
	DefaultMaxQueuedSnapshots  = 5000
	DefaultMaxSubqueryValues   = 100_000
)

// Open restores the shapes found in the store and starts the background
// goroutines (log flushing, schema checks, closing idle logs, expiry).
func (c *Cache) Open(ctx context.Context) error {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("component", "shapecache")
	if c.SnapshotConcurrency <= 0 {
		c.SnapshotConcurrency = DefaultSnapshotConcurrency
	}
	if c.MaxQueuedSnapshots <= 0 {
		c.MaxQueuedSnapshots = DefaultMaxQueuedSnapshots
	}
	c.Compaction.defaults()
	c.slowSnapshot = time.Second
	c.byHandle = map[string]*Entry{}
	c.byKey = map[string]*Entry{}
	c.byRel = map[uint32]map[*Entry]struct{}{}
	c.dirty = map[*Entry]struct{}{}
	c.creating = map[string]*creation{}
	c.logs.init(c.MaxOpenLogs)
	c.snapSlots = make(chan struct{}, c.SnapshotConcurrency)
	c.commits = newCommitLog()
	c.flushReq = make(chan struct{}, 1)
	c.inflight = make(chan struct{}, maxInflightTxns)
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.deleter.init(c.Store, c.Logger)
	started := time.Now()
	if err := c.restore(); err != nil {
		return err
	}
	c.pool.start(evalWorkers(), &c.wg, c.runJob)
	c.wg.Add(4)
	go func() { defer c.wg.Done(); c.removeOrphans(started) }()
	go c.flushLoop()
	go c.janitorLoop()
	go func() { defer c.wg.Done(); c.deleter.run(c.ctx) }()
	if c.SchemaCheckInterval > 0 {
		c.wg.Add(1)
		go c.schemaLoop()
	}
	if c.ShapeTTL > 0 {
		c.wg.Add(1)
		go c.expiryLoop()
	}
	return nil
}

// Close stops the background goroutines after a final flush and closes
// the open logs.
func (c *Cache) Close() error {
	c.stopFeed()
	c.cancel()
	c.pool.close() // its workers finish the jobs queued
	c.wg.Wait()
	c.flush()
	c.deleter.drain()
	c.mu.Lock()
	entries := make([]*Entry, 0, len(c.byHandle))
	for _, e := range c.byHandle {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	for _, e := range entries {
		e.lmu.Lock()
		if e.log != nil {
			_ = e.log.Close()
			e.log = nil
		}
		e.lmu.Unlock()
	}
	return c.catalog.close()
}

// Follow runs feed, the source of the cache's transactions (the
// replication reader calling HandleTransaction), on a goroutine the cache
// owns, with a context that Close cancels. Close waits for feed to return
// before it flushes and closes any log, so no transaction is routed into a
// closing cache. The returned channel receives feed's result when it
// returns on its own, and is closed without a value when Close stopped it
// (so a goroutine watching it ends either way). One feed at a time.
func (c *Cache) Follow(feed func(ctx context.Context) error) <-chan error {
	c.feedMu.Lock()
	defer c.feedMu.Unlock()
	if c.feedDone != nil {
		panic("shapecache: Follow called twice")
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.feedCancel, c.feedDone = cancel, make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		defer close(c.feedDone)
		err := feed(ctx)
		if ctx.Err() == nil {
			stopped <- err
		}
		close(stopped)
	}()
	return stopped
}

// stopFeed cancels Follow's feed and waits for it to return.
func (c *Cache) stopFeed() {
	c.feedMu.Lock()
	cancel, done := c.feedCancel, c.feedDone
	c.feedMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// LastProcessedLSN is the newest LSN known to be processed, in this run or
// (up to the slot's position at start) an earlier one: global_last_seen_lsn.
func (c *Cache) LastProcessedLSN() uint64 { return max(c.lastProcessed.Load(), c.seenBefore.Load()) }

// SetStartLSN records the replication slot's confirmed position at start.
func (c *Cache) SetStartLSN(lsn uint64) { c.seenBefore.Store(lsn) }

// DurableLSN is the end LSN up to which every handled transaction is on disk
// in every shape log it belongs to.
func (c *Cache) DurableLSN() uint64 { return c.durable.Load() }

// Lookup returns the shape with the given handle.
func (c *Cache) Lookup(handle string) (*Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHandle[handle]
	return e, ok
}

// Find returns the existing shape for s, if any.
func (c *Cache) Find(s *shape.Shape) (*Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[s.Key]
	return e, ok
}

// Len returns the number of shapes (retired ones included until removed).
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byHandle)
}

// GetOrCreate returns the shape for s, creating it (and starting its
// snapshot) when none exists.
func (c *Cache) GetOrCreate(ctx context.Context, s *shape.Shape) (*Entry, error) {
	c.mu.Lock()
	if e, ok := c.byKey[s.Key]; ok {
		c.mu.Unlock()
		return e, nil
	}
	if w, ok := c.creating[s.Key]; ok {
		c.mu.Unlock()
		<-w.done
		return w.e, w.err
	}
	if c.snapsLive.Load() >= int64(c.SnapshotConcurrency+c.MaxQueuedSnapshots) {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %d snapshots running or queued", ErrOverloaded, c.snapsLive.Load())
	}
	w := &creation{done: make(chan struct{})}
	c.creating[s.Key] = w
	c.mu.Unlock()

	// Files are created outside the lock: replication keeps flowing.
	w.e, w.err = c.create(ctx, s)

	c.mu.Lock()
	delete(c.creating, s.Key)
	if w.err == nil {
		c.register(w.e)
		c.startSnapshot(w.e)
	}
	c.mu.Unlock()
	close(w.done)
	return w.e, w.err
}

// creation is a shape being created; concurrent requests for the same
// definition wait for it instead of creating their own.
type creation struct {
	done chan struct{}
	e    *Entry
	err  error
}

func (c *Cache) create(ctx context.Context, s *shape.Shape) (*Entry, error) {
	s = c.shapes.Own(s)
	handle := c.shapes.NewHandle(s)
	var sq *sqState
	if s.Plan() != nil {
		var err error
		if sq, err = c.newSubqueryState(ctx, s, handle); err != nil {
			return nil, err
		}
	}
	log, err := c.Store.Create(handle)
	if err != nil {
		return nil, fmt.Errorf("create shape log: %w", err)
	}
	c.Metrics.shapeCreated()
	c.Logger.Info("shape created", "handle", handle, "table", s.Table.Schema+"."+s.Table.Name, "where", s.Def.Where)
	e := newEntry(c, handle, s)
	e.sq = sq
	if sq != nil {
		s.SetTagPrefix(sq.prefix)
	}
	e.setLog(log)
	if sq != nil {
		c.Logger.Info("shape with subqueries created (experimental)", "handle", handle)
	}
	return e, nil
}

// Delete removes the shape with the given handle and its files.
func (c *Cache) Delete(handle string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHandle[handle]
	if ok {
		c.removeLocked(e, "deleted")
	}
	return ok
}

func (c *Cache) register(e *Entry) {
	terms, indexed := routeTerms(e.Shape)
	c.registerTerms(e, terms, indexed)
}

// registerTerms is register with the shape's routing terms known (a
// restored shape: from the catalog, without compiling its where clause).
func (c *Cache) registerTerms(e *Entry, terms []where.Term, indexed bool) {
	c.byHandle[e.Handle] = e
	c.byKey[e.Shape.Key] = e
	c.routeWith(e, terms, indexed)
	if e.sq != nil {
		c.registerSubqueryLocked(e)
	}
}

// route makes HandleTransaction consider e for its table's changes.
func (c *Cache) route(e *Entry) {
	terms, indexed := routeTerms(e.Shape)
	c.routeWith(e, terms, indexed)
}

func (c *Cache) routeWith(e *Entry, terms []where.Term, indexed bool) {
	c.index.AddTerms(e, e.Shape.Table.OID, terms, indexed)
	// byRel files e under its table, for table-wide operations.
	rel := c.byRel[e.Shape.Table.OID]
	if rel == nil {
		rel = map[*Entry]struct{}{}
		c.byRel[e.Shape.Table.OID] = rel
	}
	rel[e] = struct{}{}
}

// removeLocked unregisters e, wakes its readers and deletes its files.
func (c *Cache) removeLocked(e *Entry, why string) {
	if c.byHandle[e.Handle] != e {
		return
	}
	delete(c.byHandle, e.Handle)
	if c.byKey[e.Shape.Key] == e {
		delete(c.byKey, e.Shape.Key)
	}
	c.index.Remove(e)
	if e.sq != nil {
		c.unregisterSubqueryLocked(e)
	}
	if rel := c.byRel[e.Shape.Table.OID]; rel != nil {
		delete(rel, e)
		if len(rel) == 0 {
			delete(c.byRel, e.Shape.Table.OID)
		}
	}
	delete(c.dirty, e)
	e.markGone()
	e.lmu.Lock()
	e.log = nil // Store.Delete closes it
	e.closed = nil
	e.lmu.Unlock()
	c.logs.forget(e)
	c.catalog.remove(e.Handle)
	c.deleter.add(e.Handle)
	c.requestFlush() // makes the removal durable in the catalog
	c.Metrics.shapeRemoved(why)
	c.Logger.Info("shape removed", "handle", e.Handle, "reason", why)
}

// removeBroken removes a shape whose files are missing.
func (c *Cache) removeBroken(e *Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(e, "files missing")
}

// routeTerms returns a shape's routing terms (where.Expr.IndexTerms); a
// shape without a where clause matches every row and is not indexed.
func routeTerms(s *shape.Shape) ([]where.Term, bool) {
	f, _ := s.Filter() // compiled by shape.New
	if f == nil {
		return nil, false
	}
	return f.IndexTerms()
}

// purge removes every shape (used when the replication slot was recreated
// and the logs can no longer be continued).
func (c *Cache) Purge(why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.byHandle {
		c.removeLocked(e, why)
	}
}
