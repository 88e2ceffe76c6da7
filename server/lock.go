package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// storageLock is an exclusive flock on the storage directory's volt.lock,
// held for the server's life; the kernel drops it when the process exits,
// however it exits. A second volt on the same directory would otherwise
// run the same shape logs and take the first one's embedded Postgres for a
// leftover and stop it. The file holds the owner's pid, for the messages
// of the others.
type storageLock struct {
	f *os.File
}

// lockedError reports a storage directory held by another process.
type lockedError struct {
	dir   string
	owner string // "another volt (pid N)"
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("storage directory %s is in use by %s: stop it first, or give this one another -storage-dir", e.dir, e.owner)
}

// tryLock takes the lock without waiting: a *lockedError when another
// process holds it.
func tryLock(dir string) (*storageLock, error) {
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
			return nil, &lockedError{dir: dir, owner: owner}
		}
		return nil, fmt.Errorf("lock the storage directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &storageLock{f: f}, nil
}

// lockPoll is how often a standby tries the lock: the takeover starts at
// most this long after the active instance exits.
const lockPoll = 10 * time.Millisecond

// waitLock takes the lock once its holder lets go, or fails when ctx ends.
// It polls (a blocking flock cannot be cancelled); one syscall per poll.
func waitLock(ctx context.Context, dir string) (*storageLock, error) {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		l, err := tryLock(dir)
		var locked *lockedError
		if !errors.As(err, &locked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (l *storageLock) release() error { return l.f.Close() }
