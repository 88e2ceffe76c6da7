package shapecache

import (
	"fmt"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
	"github.com/voltsync/volt/where"
)

// startSnapshot runs e's initial snapshot in the background once one of
// the SnapshotConcurrency slots is free.
func (c *Cache) startSnapshot(e *Entry) {
	c.snapsLive.Add(1)
	c.wg.Add(1)
	go c.snapshot(e)
}

// snapshot takes e's initial snapshot and marks it complete, or removes the
// shape when that fails.
func (c *Cache) snapshot(e *Entry) {
	defer c.wg.Done()
	defer c.snapsLive.Add(-1)
	var err error
	select {
	case c.snapSlots <- struct{}{}:
		start := time.Now()
		err = c.takeSnapshot(e)
		c.Metrics.snapshotTook(time.Since(start), err == nil)
		<-c.snapSlots
	case <-c.ctx.Done():
		err = c.ctx.Err()
	case <-e.gone:
		err = ErrShapeGone
	}
	if err != nil {
		e.snapErr.Store(&err)
		if postgres.IsNotOwner(err) {
			// An operator must fix it; the message quotes no rows.
			c.Logger.Error("cannot publish the shape's table", "handle", e.Handle, "err", err)
		} else if pe, ok := ClientError(err); ok {
			// The shape's query is wrong (its clients get a 400); the
			// message may quote row values, so only the code is logged.
			c.Logger.Warn("snapshot refused by Postgres", "handle", e.Handle, "table", e.Shape.Table.Schema+"."+e.Shape.Table.Name, "sqlstate", pe.Code)
		} else {
			c.Logger.Error("snapshot failed", "handle", e.Handle, "err", err)
		}
		c.mu.Lock()
		c.removeLocked(e, "snapshot failed")
		c.mu.Unlock()
	}
	close(e.ready)
}

func (c *Cache) takeSnapshot(e *Entry) error {
	start := time.Now()
	l, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.release()
	s := e.Shape
	if err := c.publish(s.Table.OID, s.Table.Schema, s.Table.Name); err != nil {
		return err
	}
	ph := snapPhases{start: start, published: time.Since(start)}
	var info postgres.SnapshotInfo
	var rows, bytes int64
	if e.sq != nil {
		// The dependencies' tables must stream their changes too.
		for _, d := range e.sq.deps {
			if err := c.publish(d.oid, d.dep.Schema, d.dep.Table); err != nil {
				return err
			}
			for _, nd := range nestedDeps(d.dep) {
				if err := c.publish(0, nd.Schema, nd.Table); err != nil {
					return err
				}
			}
		}
		if info, rows, bytes, err = c.takeSubquerySnapshot(e, l); err != nil {
			return err
		}
		return c.finishSnapshot(e, l, info, rows, bytes, ph)
	}
	q := postgres.SnapshotQuery{Table: quoteQualified(s.Table.Schema, s.Table.Name), InfoOnly: s.Def.Log == shape.LogChangesOnly}
	for _, name := range s.SelectedNames() {
		q.Columns = append(q.Columns, postgres.QuoteIdent(name))
	}
	f, err := s.Filter()
	if err != nil {
		return fmt.Errorf("compile where clause: %w", err)
	}
	if f != nil {
		q.Where = f.SQL()
	}
	enc := s.SnapshotEncoder()
	var row []byte
	// The snapshot must hold every transaction routed before the shape
	// was registered (unseen.go): taken again until it does.
	routed := c.routedLSN()
	err = untilSeen(c.ctx, "snapshot", func() error {
		return c.Snapshotter.Snapshot(c.ctx, q,
			func(si postgres.SnapshotInfo) error {
				if c.routedUnseen(si.Snapshot, routed) {
					return errSnapshotUnseen
				}
				info = si
				return c.setSnapshot(e, l, si)
			},
			func(raw [][]byte) error {
				if rows == 0 {
					ph.firstRow = time.Since(start)
				}
				row = enc.Append(row[:0], raw)
				rows++
				bytes += int64(len(row))
				return l.AppendSnapshot(row)
			})
	})
	if err != nil {
		return err
	}
	return c.finishSnapshot(e, l, info, rows, bytes, ph)
}

// snapPhases times a snapshot for its log line: from its start to the
// table being published and to the first row.
type snapPhases struct {
	start               time.Time
	published, firstRow time.Duration
}

// finishSnapshot writes snapshot-end and queues the shape for the
// catalog.
func (c *Cache) finishSnapshot(e *Entry, l *shapelog.Log, info postgres.SnapshotInfo, rows, bytes int64, ph snapPhases) error {
	s := e.Shape
	// FinishSnapshot makes the snapshot durable. The shape enters the
	// catalog (and so survives a restart) at the next flush, after its
	// directory and its live entries so far are durable too.
	if err := l.FinishSnapshot(shape.SnapshotEnd(info.Snapshot)); err != nil {
		return fmt.Errorf("finish snapshot: %w", err)
	}
	c.mu.Lock()
	e.rows += rows
	e.ops += rows
	if !e.IsGone() {
		c.completed = append(c.completed, e)
	}
	c.mu.Unlock()
	c.requestFlush()
	if d := time.Since(ph.start); d > c.slowSnapshot {
		c.Logger.Info("snapshot complete", "handle", e.Handle, "table", s.Table.Schema+"."+s.Table.Name, "rows", rows, "bytes", bytes, "duration", d, "published_after", ph.published, "first_row_after", ph.firstRow)
	} else {
		c.Logger.Debug("snapshot complete", "handle", e.Handle, "rows", rows, "bytes", bytes, "duration", d, "published_after", ph.published, "first_row_after", ph.firstRow)
	}
	return nil
}

// setSnapshot records the snapshot's identity and moves the transactions
// buffered meanwhile into the log, minus those the snapshot already holds.
func (c *Cache) setSnapshot(e *Entry, l *shapelog.Log, si postgres.SnapshotInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.IsGone() {
		return ErrShapeGone
	}
	e.snap = &si
	for _, t := range e.pending {
		if e.skip(l, t.lsn, t.xid) {
			continue
		}
		if err := e.append(l, t.entries); err != nil {
			return err
		}
		e.rows += t.delta.rows
		e.ops += t.delta.ops
		c.dirty[e] = struct{}{}
	}
	e.pending = nil
	return nil
}

// publish adds a table to the publication once (oid 0: not known, always
// asked).
func (c *Cache) publish(oid uint32, schema, name string) error {
	if _, done := c.published.Load(oid); done && oid != 0 {
		return nil
	}
	if err := c.Publisher.AddTable(c.ctx, schema, name); err != nil {
		return fmt.Errorf("add table to publication: %w", err)
	}
	if oid != 0 {
		c.published.Store(oid, true)
	}
	return nil
}

// nestedDeps lists the dependencies nested in dep, at every depth.
func nestedDeps(dep *where.Dependency) []*where.Dependency {
	if dep.Plan == nil {
		return nil
	}
	var out []*where.Dependency
	for _, nd := range dep.Plan.Deps {
		out = append(out, nd)
		out = append(out, nestedDeps(nd)...)
	}
	return out
}

func quoteQualified(schema, name string) string {
	return postgres.QuoteIdent(schema) + "." + postgres.QuoteIdent(name)
}

// LocateWritten is Locate for a snapshot chunk that may still be being
// written (shapelog.Log.LocateWritten): the caller streams the page and
// then calls release.
func (e *Entry) LocateWritten(after volt.Offset, from int64) (p shapelog.Page, release func(), err error) {
	e.Touch()
	l, err := e.acquire()
	if err != nil {
		return shapelog.Page{}, nil, err
	}
	p, err = l.LocateWritten(after, from)
	if err != nil {
		e.release()
		if e.IsGone() {
			err = ErrShapeGone
		}
		return shapelog.Page{}, nil, err
	}
	return p, e.release, nil
}
