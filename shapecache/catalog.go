package shapecache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

// The catalog is the list of shapes a restart restores: one append-only
// file next to the shape logs, so a restart reads one file instead of
// opening every shape's directory. A shape is added only after its
// snapshot and directory are durable, so every shape in the catalog is
// complete; a removal is recorded before its files are deleted.
//
// File format: a sequence of records, each
//
//	len    uint32  little-endian, length of body
//	crc32c uint32  over body
//	body   [len]byte  a catalogRecord (catalogcodec.go)
//
// A torn or corrupt tail (a crash while appending) ends the file; it is
// truncated on open. Table definitions are written once per table version
// and referenced by id, so 100,000 shapes of one table store it once.
const catalogFile = "catalog"

type catalogRecord struct {
	// Op is "table", "add" or "del".
	Op string `json:"op"`
	// Table records: ID and Table. Add records: ID refers to a table.
	ID    int         `json:"id,omitempty"`
	Table *volt.Table `json:"table,omitempty"`

	Handle     string                 `json:"handle,omitempty"`
	Definition *shape.Definition      `json:"def,omitempty"`
	Key        string                 `json:"key,omitempty"`
	Snapshot   *postgres.SnapshotInfo `json:"snap,omitempty"`
	// Terms and Indexed are the where clause's routing terms
	// (where.Expr.IndexTerms), so a restart need not parse it.
	Terms   []where.Term `json:"terms,omitempty"`
	Indexed bool         `json:"indexed,omitempty"`
	// Rows and Ops seed the compaction counters.
	Rows int64 `json:"rows,omitempty"`
	Ops  int64 `json:"ops,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// catalog appends records to the catalog file. Records are buffered by
// add and made durable by sync (the cache's flush loop), so shapes created
// in a burst share one fsync.
type catalog struct {
	path string

	mu      sync.Mutex
	f       *os.File
	size    int64 // bytes written to f
	buf     []byte
	tables  map[*volt.Table]int // table versions already written
	nextID  int
	adds    int // live add records in the file (for rewriting)
	removes int
}

// loadCatalog reads the catalog at path (missing = empty) and returns the
// shapes it lists, with the file opened for appending.
func loadCatalog(path string) (*catalog, []catalogRecord, error) {
	c := &catalog{path: path, tables: map[*volt.Table]int{}}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	// Frame the records (cheap), then decode their JSON on every core: a
	// restart with 100,000 shapes is mostly this decoding.
	var bodies [][]byte
	var good int64
	for pos := int64(0); pos+8 <= int64(len(data)); {
		n := int64(binary.LittleEndian.Uint32(data[pos:]))
		end := pos + 8 + n
		if n > 64<<20 || end > int64(len(data)) {
			break
		}
		body := data[pos+8 : end]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[pos+4:]) {
			break
		}
		bodies = append(bodies, body)
		pos, good = end, end
	}
	recs := make([]catalogRecord, len(bodies))
	bad := make([]bool, len(bodies))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(bodies)/1000))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(bodies); i += workers {
				bad[i] = decodeRecord(bodies[i], &recs[i]) != nil
			}
		}()
	}
	wg.Wait()
	tables := map[int]*volt.Table{}
	live := map[string]int{} // handle → index in adds
	var adds []catalogRecord
	for i := range recs {
		if bad[i] {
			// A record that frames and checksums but does not decode was
			// written by something else: stop here, as at a torn tail.
			good = 0
			for _, b := range bodies[:i] {
				good += 8 + int64(len(b))
			}
			break
		}
		rec := recs[i]
		switch rec.Op {
		case "table":
			tables[rec.ID] = rec.Table
			c.nextID = max(c.nextID, rec.ID+1)
		case "add":
			rec.Table = tables[rec.ID]
			if rec.Table == nil || rec.Definition == nil || rec.Snapshot == nil {
				continue
			}
			live[rec.Handle] = len(adds)
			adds = append(adds, rec)
			c.adds++
		case "del":
			if i, ok := live[rec.Handle]; ok {
				adds[i].Handle = ""
				delete(live, rec.Handle)
				c.removes++
			}
		}
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("truncate catalog tail: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	c.f, c.size = f, good
	out := adds[:0]
	for _, a := range adds {
		if a.Handle != "" {
			out = append(out, a)
		}
	}
	return c, out, nil
}

// rewrite replaces the catalog with one holding only shapes (used at
// start when removals make up much of the file).
func (c *catalog) rewrite(shapes []catalogRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tmp := c.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	old, oldSize := c.f, c.size
	c.f, c.size, c.buf, c.tables, c.nextID, c.adds, c.removes = f, 0, nil, map[*volt.Table]int{}, 0, 0, 0
	for i := range shapes {
		c.addLocked(&shapes[i])
	}
	err = c.flushLocked()
	if err == nil {
		err = os.Rename(tmp, c.path)
	}
	if err == nil {
		err = syncDirOf(c.path)
	}
	if err != nil {
		f.Close()
		c.f, c.size = old, oldSize
		return fmt.Errorf("rewrite catalog: %w", err)
	}
	old.Close()
	return nil
}

func (c *catalog) add(rec *catalogRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(rec)
}

func (c *catalog) addLocked(rec *catalogRecord) {
	id, ok := c.tables[rec.Table]
	if !ok {
		id = c.nextID
		c.nextID++
		c.tables[rec.Table] = id
		c.appendLocked(catalogRecord{Op: "table", ID: id, Table: rec.Table})
	}
	r := *rec
	r.Op, r.ID, r.Table = "add", id, nil
	c.appendLocked(r)
	c.adds++
}

func (c *catalog) remove(handle string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.appendLocked(catalogRecord{Op: "del", Handle: handle})
	c.removes++
}

func (c *catalog) appendLocked(rec catalogRecord) {
	body := encodeRecord(rec)
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(len(body)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(body, castagnoli))
	c.buf = append(append(c.buf, hdr[:]...), body...)
}

// sync writes the buffered records and fsyncs the file.
func (c *catalog) sync() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *catalog) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	if _, err := c.f.Write(c.buf); err != nil {
		// Cut a partial write so later records do not follow garbage.
		_ = c.f.Truncate(c.size)
		_, _ = c.f.Seek(c.size, io.SeekStart)
		return fmt.Errorf("write catalog: %w", err)
	}
	c.size += int64(len(c.buf))
	c.buf = c.buf[:0]
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("sync catalog: %w", err)
	}
	return nil
}

func (c *catalog) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.flushLocked()
	return errors.Join(err, c.f.Close())
}

func syncDirOf(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
