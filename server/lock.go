package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockStorage takes an exclusive lock on the storage directory for the
// life of the process (the kernel drops it when the process exits, however
// it exits). A second volt on the same directory would otherwise run the
// same shape logs and take the first one's embedded Postgres for a
// leftover and stop it. The lock file holds the owner's pid, for the
// message the second one prints.
func lockStorage(dir string) (release func(), err error) {
	path := filepath.Join(dir, "volt.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the storage lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := "another process"
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				owner = fmt.Sprintf("another volt (pid %d)", pid)
			}
			return nil, fmt.Errorf("storage directory %s is in use by %s: stop it first, or give this one another -storage-dir", dir, owner)
		}
		return nil, fmt.Errorf("lock the storage directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
