package localstore

import (
	"context"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// Checkpoints. SQLite copies the WAL back into the database file, and
// fsyncs both, inside the commit that takes the WAL past
// wal_autocheckpoint pages: that Update waits for two fsyncs, which on a
// small machine cost more, spread over the writes between checkpoints,
// than the writes themselves (BenchmarkLocalWrite: about 30 of 105 µs per
// write with a checkpoint every 4000 pages).
//
// The store checkpoints on a goroutine of its own instead: every
// ckptPages pages the write connection wrote, a PASSIVE checkpoint on
// another connection, which does not hold up the writer. Between bursts of
// writes it catches up, and the next write starts the WAL over. Under
// continuous writes it does not quite (the writer appends meanwhile), so
// the write connection keeps an autocheckpoint of 4×ckptPages: that
// checkpoint finds the WAL mostly copied, and restarts it. Durability does
// not change: a commit is in the WAL file when Update returns, and each
// checkpoint fsyncs the WAL first.
const ckptPages = 4000

var bg = context.Background()

// startCheckpointer starts the checkpoint goroutine; Close stops it.
func (db *DB) startCheckpointer() error {
	if _, err := db.w.ExecContext(bg, `PRAGMA wal_autocheckpoint = 16000`); err != nil {
		return err
	}
	db.ckpt = make(chan struct{}, 1)
	db.ckptStop = make(chan struct{})
	db.ckptDone = make(chan struct{})
	go func() {
		defer close(db.ckptDone)
		for {
			select {
			case <-db.ckptStop:
				return
			case <-db.ckpt:
			}
			_, _ = db.sql.ExecContext(bg, `PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}()
	return nil
}

// stopCheckpointer stops the checkpoint goroutine and waits for it.
func (db *DB) stopCheckpointer() {
	if db.ckptStop != nil {
		close(db.ckptStop)
		<-db.ckptDone
		db.ckptStop = nil
	}
}

// wrote counts the pages the write connection wrote to the WAL since the
// last call and wakes the checkpoint goroutine every ckptPages. The caller
// holds db.wmu, after a commit.
func (db *DB) wrote() {
	err := db.w.Raw(func(c any) error {
		s, ok := c.(sqlite.DBStatus)
		if !ok {
			return errors.ErrUnsupported
		}
		n, _, err := s.Status(sqlite.DBStatusCacheWrite, true)
		db.walPages += n
		return err
	})
	if err != nil && !errors.Is(err, driver.ErrBadConn) {
		db.walPages = ckptPages // cannot count: checkpoint now and then anyway
	}
	if db.walPages >= ckptPages {
		db.walPages = 0
		select {
		case db.ckpt <- struct{}{}:
		default:
		}
	}
}
