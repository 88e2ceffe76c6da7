package shapelog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// DefaultChunkBytes is the chunk threshold used when Options.ChunkBytes is
// not positive (Electric's default, 10 MiB).
const DefaultChunkBytes = 10 << 20

// File names inside a log directory.
const (
	formatFile  = "format" // logs of the first layout only
	snapFile    = "snapshot.dat"
	snapIdxFile = "snapshot.idx"
	liveFile    = "live.dat"
	liveIdxFile = "live.idx"
	formatMagic = "volt-shapelog 1"
)

// Errors returned by Store.
var (
	ErrExists = errors.New("shapelog: log already exists")
	ErrInUse  = errors.New("shapelog: log is already open")
	ErrClosed = errors.New("shapelog: log is closed")
)

// Options configure a Store.
type Options struct {
	// ChunkBytes is the chunk threshold for logs created by this store
	// (default DefaultChunkBytes). It is recorded in each log's format file
	// at Create; Open uses the recorded value so boundaries stay stable.
	ChunkBytes int
	// DeferSnapshotSync makes FinishSnapshot skip its fsyncs: the caller
	// calls Log.SyncSnapshot (or Close) before it relies on the snapshot
	// surviving a crash. A crash before that may leave a snapshot marked
	// complete over data that was lost, so the caller must be able to tell
	// such logs apart (volt's shape cache trusts only logs in its catalog,
	// which it writes after SyncSnapshot).
	DeferSnapshotSync bool
}

// Store is a directory of shape logs, one subdirectory per shape handle.
// Its methods are safe for concurrent use. A handle can be open at most
// once per Store.
type Store struct {
	dir  string
	opts Options
	mu   sync.Mutex
	open map[string]*Log
	// syncFile replaces (*os.File).Sync when set: tests that simulate
	// crashes by editing files (and so do not depend on real durability)
	// skip fsyncs to run fast on a busy machine, others make them fail.
	syncFile func(*os.File) error
}

// OpenStore opens (creating if needed) the store directory dir and removes
// leftovers of interrupted Create and Delete calls.
func OpenStore(dir string, opts Options) (*Store, error) {
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && e.IsDir() {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return &Store{dir: dir, opts: opts, open: map[string]*Log{}}, nil
}

// Create makes a new, empty log for handle and opens it. It fails with
// ErrExists if the handle is already present. The directory is built under
// a temporary name and renamed into place, so a crash never leaves a
// half-created log under the handle.
//
// Create does not fsync: creating many shapes must not cost a dozen
// fsyncs each. The log's files survive a crash once the caller has called
// Store.SyncDir and then Store.SyncRoot (once for any number of new logs);
// until then a crash may lose the log entirely, never half of it.
func (s *Store) Create(handle string) (*Log, error) {
	if err := validName(handle); err != nil {
		return nil, err
	}
	final := filepath.Join(s.dir, handle)
	// Reserve the handle, then build the files without holding the lock:
	// many shapes may be created at once.
	s.mu.Lock()
	if _, ok := s.open[handle]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrExists, handle)
	}
	if _, err := os.Lstat(final); err == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrExists, handle)
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.mu.Unlock()
		return nil, err
	}
	s.open[handle] = nil
	s.mu.Unlock()
	unreserve := func() {
		s.mu.Lock()
		delete(s.open, handle)
		s.mu.Unlock()
	}
	tmp := filepath.Join(s.dir, "."+handle+".creating")
	if err := s.build(tmp); err != nil {
		os.RemoveAll(tmp)
		unreserve()
		return nil, err
	}
	l, err := openLog(s, handle, tmp, true)
	if err != nil {
		os.RemoveAll(tmp)
		unreserve()
		return nil, fmt.Errorf("shapelog: open %s: %w", handle, err)
	}
	// The open files follow the directory's rename.
	if err := os.Rename(tmp, final); err != nil {
		l.closeFiles()
		os.RemoveAll(tmp)
		unreserve()
		return nil, err
	}
	l.dir = final
	s.mu.Lock()
	s.open[handle] = l
	s.mu.Unlock()
	return l, nil
}

// SyncRoot fsyncs the store directory, making the logs created (and the
// deletions done) so far durable, together with each new log's SyncDir.
func (s *Store) SyncRoot() error { return s.syncDir(s.dir) }

// SyncDir makes the directory of the log for handle durable, with the
// file that records its chunk threshold (the snapshot index, or the
// format file of a log of the first layout; see Create). The index of
// an open log whose complete snapshot is synced is durable already.
func (s *Store) SyncDir(handle string) error {
	if err := validName(handle); err != nil {
		return err
	}
	dir := filepath.Join(s.dir, handle)
	s.mu.Lock()
	l := s.open[handle]
	s.mu.Unlock()
	if l != nil && l.headerSynced() {
		// Even a clean file's fsync costs a device flush.
		return s.syncDir(dir)
	}
	f, err := os.Open(filepath.Join(dir, formatFile))
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.Open(filepath.Join(dir, snapIdxFile))
	}
	if err != nil {
		return err
	}
	err = s.fsync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.syncDir(dir)
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// build creates an empty log's directory in dir, without fsyncs; openLog
// creates the data files. A log's files are its directory's only inodes
// besides the live files, created on the first Append: each costs a
// shape's creation an inode allocation, the filesystem's dearest step.
func (s *Store) build(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) { // left by a failed Create
		if err = os.RemoveAll(dir); err == nil {
			err = os.Mkdir(dir, 0o755)
		}
	}
	return err
}

// Open opens an existing log, recovering from a crash: a torn or partial
// tail is truncated back to the last complete transaction and an
// unfinished snapshot is discarded. It fails with ErrInUse if the handle
// is already open in this Store.
func (s *Store) Open(handle string) (*Log, error) {
	if err := validName(handle); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openLocked(handle)
}

func (s *Store) openLocked(handle string) (*Log, error) {
	if _, ok := s.open[handle]; ok {
		return nil, fmt.Errorf("%w: %s", ErrInUse, handle)
	}
	l, err := openLog(s, handle, filepath.Join(s.dir, handle), false)
	if err != nil {
		return nil, fmt.Errorf("shapelog: open %s: %w", handle, err)
	}
	s.open[handle] = l
	return l, nil
}

// Reopen opens again a log this Store's Open or Create returned and that
// was then closed. When Close succeeded, the log's snapshot is complete
// and it has live entries, the state it held is still what its files
// say (they are the Store's: nothing else writes them, and Close synced
// them), so only the two live files are opened: no format file, no
// snapshot files and no recovery scan, which Open costs. The snapshot
// files are opened when a client reads them. Otherwise Reopen is Open.
// It fails with ErrInUse if the handle is open in this Store.
func (s *Store) Reopen(closed *Log) (*Log, error) {
	if closed.store != s {
		return nil, fmt.Errorf("shapelog: reopen %s: log of another store", closed.handle)
	}
	closed.smu.Lock()
	closed.wmu.Lock()
	fast := closed.clean && closed.sw.complete && closed.live != nil
	closed.wmu.Unlock()
	closed.smu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !fast {
		return s.openLocked(closed.handle)
	}
	if _, ok := s.open[closed.handle]; ok {
		return nil, fmt.Errorf("%w: %s", ErrInUse, closed.handle)
	}
	l, err := closed.reopen()
	if err != nil {
		// Not as closed (or gone): Open recovers, or says why not.
		return s.openLocked(closed.handle)
	}
	s.open[closed.handle] = l
	return l, nil
}

// Get returns the log for handle if it is currently open in this Store.
func (s *Store) Get(handle string) (*Log, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.open[handle]
	return l, l != nil
}

// forget is called by Log.Close.
func (s *Store) forget(handle string, l *Log) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[handle] == l {
		delete(s.open, handle)
	}
}

// List returns the handles present on disk, sorted.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && validName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Delete closes the log for handle if it is open and removes its files.
// The directory is first renamed away (atomically), so a crash during the
// removal never leaves a partial log under the handle.
func (s *Store) Delete(handle string) error {
	if err := validName(handle); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.open[handle]; l != nil {
		delete(s.open, handle)
		l.close() // the files are removed anyway; a sync error is moot
	}
	final := filepath.Join(s.dir, handle)
	gone, err := os.MkdirTemp(s.dir, "."+handle+".deleting-")
	if err != nil {
		return err
	}
	trash := filepath.Join(gone, handle)
	if err := os.Rename(final, trash); err != nil {
		os.Remove(gone)
		return err
	}
	if err := s.syncDir(s.dir); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// DiskUsage returns the total size in bytes of the files of handle.
func (s *Store) DiskUsage(handle string) (int64, error) {
	if err := validName(handle); err != nil {
		return 0, err
	}
	var total int64
	err := filepath.WalkDir(filepath.Join(s.dir, handle), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// readFormat returns the chunk threshold recorded in a log directory.
func readFormat(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if err != nil {
		return 0, err
	}
	var chunk int64
	rest, ok := strings.CutPrefix(string(b), formatMagic+"\n")
	if !ok {
		return 0, fmt.Errorf("shapelog: unknown format in %s", dir)
	}
	if _, err := fmt.Sscanf(rest, "chunk_bytes %d\n", &chunk); err != nil || chunk <= 0 {
		return 0, fmt.Errorf("shapelog: bad format file in %s", dir)
	}
	return chunk, nil
}

// fsync flushes f to stable storage.
func (s *Store) fsync(f *os.File) error {
	if s.syncFile != nil {
		return s.syncFile(f)
	}
	return f.Sync()
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it are durable.
func (s *Store) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = s.fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// validName accepts handles and metadata names: 1–200 characters from
// [A-Za-z0-9._-], not starting with a dot.
func validName(s string) error {
	if s == "" || len(s) > 200 || s[0] == '.' {
		return fmt.Errorf("shapelog: invalid name %q", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == '-':
		default:
			return fmt.Errorf("shapelog: invalid name %q", s)
		}
	}
	return nil
}
