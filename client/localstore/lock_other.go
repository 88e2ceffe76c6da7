//go:build !unix

package localstore

import "os"

// lockFile opens path; without flock, SQLite's own locking is all that
// keeps two processes apart.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
