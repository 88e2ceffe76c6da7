package shapecache

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
)

// restore loads the shapes of a previous run from the catalog, without
// opening their logs, listing their directories or parsing their where
// clauses (each happens on first use). Directories the catalog does not
// list (a shape whose snapshot never completed, or a store from an older
// version) are deleted in the background (removeOrphans). Shapes with
// subqueries are the exception: their where clause is compiled (its
// tables looked up) here, and a resync started for each
// (subquery_restore.go).
func (c *Cache) restore() error {
	cat, recs, err := loadCatalog(filepath.Join(c.Store.Dir(), catalogFile))
	if err != nil {
		return fmt.Errorf("load shape catalog: %w", err)
	}
	c.catalog = cat
	c.byHandle = make(map[string]*Entry, len(recs))
	c.byKey = make(map[string]*Entry, len(recs))
	var retired, resync []*Entry
	kept := recs[:0:0]
	for _, r := range recs {
		var e *Entry
		if r.Definition.Subqueries {
			// Its dependency state is rebuilt by a resync (subquery_restore.go).
			if e, err = c.restoreSubquery(r); err != nil {
				c.Logger.Warn("discarding shape with subqueries", "handle", r.Handle, "err", err)
				c.catalog.remove(r.Handle)
				continue
			}
			resync = append(resync, e)
		} else {
			s, err := c.shapes.Restore(*r.Definition, r.Table, r.Key)
			if err != nil {
				c.Logger.Warn("discarding shape", "handle", r.Handle, "err", err)
				continue
			}
			e = newEntry(c, r.Handle, s)
		}
		kept = append(kept, r)
		s := e.Shape
		e.ready = closedChan
		e.snap = r.Snapshot
		e.rows, e.ops = r.Rows, r.Ops
		if prev := c.byKey[s.Key]; prev != nil {
			// Compacted before the restart: the later entry replaced the
			// earlier one, which still serves its clients for a grace period.
			prev.retired = true
			retired = append(retired, prev)
		}
		c.registerTerms(e, r.Terms, r.Indexed)
	}
	for _, e := range retired {
		c.retire(e)
	}
	if cat.removes > cat.adds/2 {
		if err := cat.rewrite(kept); err != nil {
			return err
		}
	}
	for _, e := range resync {
		c.startResync(e)
	}
	if len(c.byHandle) > 0 {
		c.Logger.Info("shapes restored", "count", len(c.byHandle))
	}
	return nil
}

// removeOrphans deletes the shape directories that no shape owns: left by
// a crash before a new shape reached the catalog. Directories of shapes
// created since started (their handles carry the creation time) are left
// alone: they may not be registered yet.
func (c *Cache) removeOrphans(started time.Time) {
	onDisk, err := c.Store.List()
	if err != nil {
		c.Logger.Warn("list shape directories", "err", err)
		return
	}
	c.mu.Lock()
	var orphans []string
	for _, h := range onDisk {
		if _, ok := c.byHandle[h]; ok || handleTime(h) >= started.UnixMicro() {
			continue
		}
		orphans = append(orphans, h)
	}
	c.mu.Unlock()
	for _, h := range orphans {
		c.deleter.add(h)
	}
	if len(orphans) > 0 {
		c.Logger.Info("removing shape directories no shape owns", "count", len(orphans))
	}
}

// handleTime returns the creation time (unix µs) in a handle
// "<hash>-<µs>", or 0.
func handleTime(h string) int64 {
	i := strings.LastIndexByte(h, '-')
	if i < 0 {
		return 0
	}
	n, _ := strconv.ParseInt(h[i+1:], 10, 64)
	return n
}

// schemaLoop periodically compares the tables that have shapes with the
// catalog and rotates the shapes of tables that were altered, dropped or
// recreated, so their clients re-sync even before a row changes.
func (c *Cache) schemaLoop() { c.every(c.SchemaCheckInterval, nil, c.checkSchemas) }

func (c *Cache) checkSchemas() {
	c.mu.Lock()
	tables := map[uint32]*volt.Table{}
	for oid, rel := range c.byRel {
		for e := range rel {
			tables[oid] = e.Shape.Table
			break
		}
	}
	c.mu.Unlock()
	for oid, t := range tables {
		cur, err := c.Inspector.Table(c.ctx, t.Schema, t.Name)
		if err != nil && !errors.Is(err, postgres.ErrTableNotFound) {
			continue // database unreachable: try again next time
		}
		if err == nil && sameColumns(t, cur) {
			continue
		}
		c.mu.Lock()
		c.rotateRelation(oid, "schema changed")
		c.mu.Unlock()
	}
}

func sameColumns(a, b *volt.Table) bool {
	if a.OID != b.OID || len(a.Columns) != len(b.Columns) || len(a.PrimaryKey) != len(b.PrimaryKey) {
		return false
	}
	for i := range a.Columns {
		x, y := a.Columns[i], b.Columns[i]
		if x.Name != y.Name || x.TypeOID != y.TypeOID || x.TypeMod != y.TypeMod {
			return false
		}
	}
	for i := range a.PrimaryKey {
		if a.PrimaryKey[i] != b.PrimaryKey[i] {
			return false
		}
	}
	return true
}
