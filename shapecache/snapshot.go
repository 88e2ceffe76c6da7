package shapecache

import (
	"encoding/json"
	"fmt"

	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
)

const (
	metaDefinition = "shape.json"
	metaSnapshot   = "snapshot.json"
)

type storedDefinition struct {
	Definition shape.Definition `json:"definition"`
	Table      json.RawMessage  `json:"table"`
}

func writeDefinition(log *shapelog.Log, s *shape.Shape) error {
	table, err := json.Marshal(s.Table)
	if err != nil {
		return err
	}
	b, err := json.Marshal(storedDefinition{Definition: s.Def, Table: table})
	if err != nil {
		return err
	}
	if err := log.WriteMeta(metaDefinition, b); err != nil {
		return fmt.Errorf("write shape definition: %w", err)
	}
	return nil
}

// snapshot takes e's initial snapshot and marks it complete, or removes the
// shape when that fails.
func (c *Cache) snapshot(e *Entry) {
	defer c.wg.Done()
	err := c.takeSnapshot(e)
	if err != nil {
		e.snapErr.Store(&err)
		c.Logger.Error("snapshot failed", "handle", e.Handle, "err", err)
		c.mu.Lock()
		c.removeLocked(e, "snapshot failed")
		c.mu.Unlock()
	}
	close(e.ready)
}

func (c *Cache) takeSnapshot(e *Entry) error {
	s := e.Shape
	if _, done := c.published.Load(s.Table.OID); !done {
		if err := c.Publisher.AddTable(c.ctx, s.Table.Schema, s.Table.Name); err != nil {
			return fmt.Errorf("add table to publication: %w", err)
		}
		c.published.Store(s.Table.OID, true)
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
	var info postgres.SnapshotInfo
	err = c.Snapshotter.Snapshot(c.ctx, q,
		func(si postgres.SnapshotInfo) error { info = si; return c.setSnapshot(e, si) },
		func(raw [][]byte) error { return e.Log.AppendSnapshot(s.SnapshotRow(raw)) })
	if err != nil {
		return err
	}
	b, _ := json.Marshal(info)
	if err := e.Log.WriteMeta(metaSnapshot, b); err != nil {
		return fmt.Errorf("write snapshot info: %w", err)
	}
	// The live entries appended so far must be as durable as the snapshot
	// before it is marked complete: a complete snapshot is never discarded.
	if err := e.sync(); err != nil {
		return fmt.Errorf("sync shape log: %w", err)
	}
	if err := e.Log.FinishSnapshot(shape.SnapshotEnd(info.Xmin, info.Xmax, info.Xip)); err != nil {
		return fmt.Errorf("finish snapshot: %w", err)
	}
	c.Logger.Debug("snapshot complete", "handle", e.Handle)
	return nil
}

// setSnapshot records the snapshot's identity and moves the transactions
// buffered meanwhile into the log, minus those the snapshot already holds.
func (c *Cache) setSnapshot(e *Entry, si postgres.SnapshotInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.IsGone() {
		return ErrShapeGone
	}
	e.snap = &si
	for _, t := range e.pending {
		if e.skip(t.lsn, t.xid) {
			continue
		}
		if err := e.append(t.entries); err != nil {
			return err
		}
		c.dirty[e] = struct{}{}
	}
	e.pending = nil
	return nil
}

func quoteQualified(schema, name string) string {
	return postgres.QuoteIdent(schema) + "." + postgres.QuoteIdent(name)
}
