package shapecache

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
)

func (c *Cache) restoreOne(handle string) (*Entry, error) {
	log, err := c.Store.Open(handle)
	if err != nil {
		return nil, err
	}
	if !log.SnapshotComplete() {
		return nil, errors.New("snapshot never completed")
	}
	b, err := log.ReadMeta(metaDefinition)
	if err != nil {
		return nil, fmt.Errorf("read definition: %w", err)
	}
	var sd storedDefinition
	var table volt.Table
	if err := json.Unmarshal(b, &sd); err != nil {
		return nil, fmt.Errorf("decode definition: %w", err)
	}
	if err := json.Unmarshal(sd.Table, &table); err != nil {
		return nil, fmt.Errorf("decode table: %w", err)
	}
	s, err := shape.New(sd.Definition, &table)
	if err != nil {
		return nil, fmt.Errorf("rebuild shape: %w", err)
	}
	if b, err = log.ReadMeta(metaSnapshot); err != nil {
		return nil, fmt.Errorf("read snapshot info: %w", err)
	}
	var si postgres.SnapshotInfo
	if err := json.Unmarshal(b, &si); err != nil {
		return nil, fmt.Errorf("decode snapshot info: %w", err)
	}
	e := newEntry(handle, s, log)
	e.snap = &si
	close(e.ready)
	return e, nil
}

// schemaLoop periodically compares the tables that have shapes with the
// catalog and rotates the shapes of tables that were altered, dropped or
// recreated, so their clients re-sync even before a row changes.
func (c *Cache) schemaLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.SchemaCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.checkSchemas()
		}
	}
}

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
