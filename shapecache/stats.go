package shapecache

import (
	"io/fs"
	"path/filepath"
)

// Stats is a snapshot of the cache's size and upkeep.
type Stats struct {
	Shapes          int   `json:"shapes"`
	OpenLogs        int   `json:"open_logs"`
	SnapshotsActive int64 `json:"snapshots_active"` // running or queued
	// DiskBytes is the size of every file under the store (shape logs
	// and catalog); only filled in by Stats(true), which walks the store.
	DiskBytes *int64 `json:"disk_bytes,omitempty"`
}

// Stats reports the cache's counters; withDisk also sums the store's
// files (a walk of every shape's directory).
func (c *Cache) Stats(withDisk bool) Stats {
	s := Stats{Shapes: c.Len(), OpenLogs: c.logs.count(), SnapshotsActive: c.snapsLive.Load()}
	if withDisk {
		var n int64
		_ = filepath.WalkDir(c.Store.Dir(), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		s.DiskBytes = &n
	}
	return s
}

// ShapeStats describes one shape for GET /v1/stats?handle=.
type ShapeStats struct {
	Handle    string `json:"handle"`
	Table     string `json:"table"`
	Where     string `json:"where,omitempty"`
	Rows      int64  `json:"rows"`     // current rows, as counted from the log
	Messages  int64  `json:"messages"` // what a new client downloads
	DiskBytes int64  `json:"disk_bytes"`
	Retired   bool   `json:"retired,omitempty"` // replaced by a compacted successor
}

// ShapeStats reports one shape's size.
func (c *Cache) ShapeStats(e *Entry) ShapeStats {
	c.mu.Lock()
	st := ShapeStats{Handle: e.Handle, Table: e.Shape.Table.Schema + "." + e.Shape.Table.Name, Where: e.Shape.Def.Where, Rows: e.rows, Messages: e.ops, Retired: e.retired}
	c.mu.Unlock()
	st.DiskBytes, _ = e.DiskUsage()
	return st
}
