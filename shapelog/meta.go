package shapelog

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteMeta atomically replaces the metadata file name with data: it writes
// a temporary file, fsyncs it, renames it over the old one and fsyncs the
// directory. After WriteMeta returns, a crash leaves either the old or the
// new content, never a mix. Names use the same characters as handles.
func (l *Log) WriteMeta(name string, data []byte) error {
	if err := validName(name); err != nil {
		return err
	}
	if l.isClosed() {
		return ErrClosed
	}
	dir := filepath.Join(l.dir, metaDir)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		// Created on first use: most logs never have metadata.
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if err := syncDir(l.dir); err != nil {
			return err
		}
	}
	return writeFileAtomic(dir, name, data)
}

// ReadMeta returns the content of the metadata file name. A missing file
// yields an error matching fs.ErrNotExist.
func (l *Log) ReadMeta(name string) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if l.isClosed() {
		return nil, ErrClosed
	}
	return os.ReadFile(filepath.Join(l.dir, metaDir, name))
}

// writeFileAtomic writes dir/name via a temporary file, fsync, rename and
// a directory fsync.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := fsync(tmp); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fsync(d)
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
