package localstore

import (
	"context"
	"database/sql"
	"regexp"
	"strings"
)

// watcher is one Watch: the base names of the tables its query reads and
// a channel that is signalled when one of them changes.
type watcher struct {
	deps map[string]bool
	ch   chan struct{}
}

// Watch runs query and calls fn with its rows, then again every time a
// table the query reads changes, until ctx ends (it returns ctx's cause)
// or fn or the query fails.
//
// Dependencies are found in the query text: every word of it that names a
// table or view of the store (case-insensitive) counts, and <t>,
// <t>_synced and <t>_local count as one. A change is a commit of Update
// that ran an INSERT, UPDATE, DELETE or REPLACE naming the table, a batch
// of Sync that changed it (rows, a must-refetch, a new schema; a batch
// that only says "up to date" is not a change), or an overlay change made
// by the Syncer or Sync (an echo cleared, a rollback). Writes a trigger
// makes to other tables, and tables reached only through a view of your
// own, are not seen: name them in the query (a comment will do).
func (db *DB) Watch(ctx context.Context, query string, args []any, fn func(*sql.Rows) error) error {
	deps, err := db.queryDeps(query)
	if err != nil {
		return err
	}
	w := &watcher{deps: deps, ch: make(chan struct{}, 1)}
	db.watchMu.Lock()
	db.watchers[w] = struct{}{}
	db.watchMu.Unlock()
	defer func() {
		db.watchMu.Lock()
		delete(db.watchers, w)
		db.watchMu.Unlock()
	}()
	for {
		if err := db.runWatch(ctx, query, args, fn); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-w.ch:
		}
	}
}

func (db *DB) runWatch(ctx context.Context, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := db.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := fn(rows); err != nil {
		return err
	}
	return rows.Err()
}

var wordRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// queryDeps returns the base names of the store's tables and views that
// query names.
func (db *DB) queryDeps(query string) (map[string]bool, error) {
	names, err := queryColumn[string](db.sql, `SELECT lower(name) FROM sqlite_schema WHERE type IN ('table', 'view')`)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	deps := map[string]bool{}
	for _, w := range wordRE.FindAllString(query, -1) {
		if w = strings.ToLower(w); known[w] {
			deps[baseName(w)] = true
		}
	}
	return deps, nil
}

// changed tells the watchers of any of tables (base names).
func (db *DB) changed(tables map[string]bool) {
	if len(tables) == 0 {
		return
	}
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	for w := range db.watchers {
		for t := range tables {
			if w.deps[t] {
				select {
				case w.ch <- struct{}{}:
				default:
				}
				break
			}
		}
	}
	db.signalOutbox()
}

// signalOutbox wakes the Syncer.
func (db *DB) signalOutbox() {
	select {
	case db.outbox <- struct{}{}:
	default:
	}
}
