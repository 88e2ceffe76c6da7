package localstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
)

// Options configure a DB.
type Options struct {
	// ClientID names this store's write queue on the server. It is used
	// only when the store is created; later opens keep the stored one.
	// Empty: a random id.
	ClientID string
	// OnRollback is called, after the rollback committed, for every local
	// transaction that was rolled back: rejected by the server, dependent
	// on a rejected one, or no longer fitting a new schema. It runs on the
	// goroutine that noticed (the Syncer's or Sync's) and must not call
	// Update on that goroutine's behalf synchronously for long.
	OnRollback func(Rollback)
	// Durable makes every commit wait for the disk (synchronous=FULL).
	// Without it (synchronous=NORMAL in WAL mode) a commit survives the
	// process being killed, but not a power loss.
	Durable bool
}

// Rollback describes a local transaction that was undone.
type Rollback struct {
	// LocalTx is the local transaction (one Update).
	LocalTx int64
	// Seq is its seq on the server, 0 when it was never sent.
	Seq int64
	// Code is the server's rejection code (volt.CodeConflict, …), or
	// "dependent" for a transaction that touched a row of a rejected one,
	// or "schema" for one the table's new schema no longer fits.
	Code    string
	Message string
	// Tables are the local tables it wrote.
	Tables []string
}

// ErrLocked is returned by Open when another process has the store open.
var ErrLocked = errors.New("localstore: the store is open in another process")

// DB is a local store. Its methods are safe for concurrent use.
type DB struct {
	sql  *sql.DB
	opts Options
	lock *os.File

	// Write transactions run on one connection the DB keeps for them,
	// with BEGIN IMMEDIATE and COMMIT prepared once: a database/sql Tx
	// starts goroutines that watch its context (database/sql's for the
	// transaction, the driver's for BEGIN and for COMMIT) and the driver
	// parses BEGIN and COMMIT every time: about half the CPU time of a
	// one-row Update.
	wmu      sync.Mutex // serialises write transactions; guards what follows
	w        *sql.Conn
	beginSt  *sql.Stmt
	commitSt *sql.Stmt
	abortSt  *sql.Stmt            // ROLLBACK
	stmts    map[string]*sql.Stmt // prepared statements of writes, on w
	written  map[string][]string  // the tables a Tx.Exec statement writes
	ws       *writeState          // what the views' triggers read from Go
	ltx      int64                // the last local transaction that wrote
	walPages int                  // pages written since the last checkpoint signal

	ckpt, ckptStop, ckptDone chan struct{} // see checkpoint.go
	closeOnce                sync.Once

	clientID string

	moveStates map[string]*moveState // by local table; guarded by wmu (see moves.go)

	watchMu  sync.Mutex
	watchers map[*watcher]struct{}
	outbox   chan struct{} // signalled when the outbox may have grown
}

// Open opens (or creates) the store at path.
func Open(path string, opts Options) (*DB, error) {
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	ws := &writeState{}
	drv, err := ws.driver()
	if err != nil {
		lock.Close()
		return nil, err
	}
	db := &DB{sql: sql.OpenDB(connector{drv, dsn(path, opts.Durable)}), opts: opts, lock: lock, ws: ws,
		stmts: map[string]*sql.Stmt{}, written: map[string][]string{},
		watchers: map[*watcher]struct{}{}, outbox: make(chan struct{}, 1)}
	if err := db.openWriter(); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.init(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func dsn(path string, durable bool) string {
	sync := "NORMAL"
	if durable {
		sync = "FULL"
	}
	// A checkpoint every 4000 WAL pages (16 MiB) rather than SQLite's 1000
	// on connections other than the write connection, which does not wait
	// for checkpoints (see checkpoint.go).
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(" + sync + ")",
		"wal_autocheckpoint(4000)", "foreign_keys(0)"} {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

// openWriter takes the connection of write transactions from the pool
// and prepares their BEGIN, COMMIT and ROLLBACK.
func (db *DB) openWriter() error {
	ctx := context.Background()
	var err error
	if db.w, err = db.sql.Conn(ctx); err != nil {
		return err
	}
	for _, s := range []struct {
		st  **sql.Stmt
		sql string
	}{{&db.beginSt, "BEGIN IMMEDIATE"}, {&db.commitSt, "COMMIT"}, {&db.abortSt, "ROLLBACK"}} {
		if *s.st, err = db.w.PrepareContext(ctx, s.sql); err != nil {
			return err
		}
	}
	return db.startCheckpointer()
}

// Close closes the store and releases its lock.
func (db *DB) Close() error {
	db.closeOnce.Do(db.stopCheckpointer)
	db.wmu.Lock()
	db.closeStmts()
	for _, st := range []*sql.Stmt{db.beginSt, db.commitSt, db.abortSt} {
		if st != nil {
			st.Close()
		}
	}
	if db.w != nil {
		db.w.Close()
	}
	db.wmu.Unlock()
	err := db.sql.Close()
	if db.lock != nil {
		db.lock.Close()
	}
	return err
}

// ClientID returns the store's client id on the server.
func (db *DB) ClientID() string { return db.clientID }

// SQL returns the underlying database, for reads outside View (Watch,
// reporting). Writes must go through Update (a write to a view outside
// Update fails).
func (db *DB) SQL() *sql.DB { return db.sql }

// init creates the store's own tables (or brings an older store's up to
// date) and loads the client id and the last local transaction.
func (db *DB) init() error {
	return db.update(func(tx *Tx) error {
		if err := upgrade(tx); err != nil {
			return fmt.Errorf("localstore: init: %w", err)
		}
		for _, stmt := range metaDDL {
			if _, err := tx.tx.Exec(stmt); err != nil {
				return fmt.Errorf("localstore: init: %w", err)
			}
		}
		id := db.opts.ClientID
		if id == "" {
			id = randomID()
		}
		if _, err := tx.tx.Exec(`INSERT OR IGNORE INTO _volt_meta(k, v) VALUES ('client_id', ?), ('next_seq', 1)`, id); err != nil {
			return err
		}
		if _, err := tx.tx.Exec(`INSERT OR REPLACE INTO _volt_meta(k, v) VALUES ('schema', ?)`, schemaVersion); err != nil {
			return err
		}
		if err := tx.tx.QueryRow(`SELECT v FROM _volt_meta WHERE k = 'client_id'`).Scan(&db.clientID); err != nil {
			return err
		}
		// Outbox ids grow with ltx: the last entry has the largest.
		var lastID int64
		if err := tx.tx.QueryRow(`SELECT max((SELECT ltx FROM _volt_flags), coalesce((SELECT max(ltx) FROM _volt_txns), 0),
			coalesce((SELECT ltx FROM _volt_outbox ORDER BY ltx DESC LIMIT 1), 0)),
			coalesce((SELECT id FROM _volt_outbox ORDER BY ltx DESC, id DESC LIMIT 1), 0)`).Scan(&db.ltx, &lastID); err != nil {
			return err
		}
		db.ws.id.Store(lastID)
		return nil
	})
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "ls-" + hex.EncodeToString(b)
}

// schemaVersion is the version of the store's own tables, kept in
// _volt_meta under 'schema' (stores without it are version 1); upgrade
// brings older stores to it.
const schemaVersion = 4

// metaDDL creates the store's bookkeeping tables.
var metaDDL = []string{
	`CREATE TABLE IF NOT EXISTS _volt_meta (k TEXT PRIMARY KEY, v ANY) STRICT`,
	// flags: ltx is at least every local transaction id handed out that
	// may no longer be in _volt_txns (written before rows go, so ids are
	// not reused; Update itself keeps the current one in memory: see
	// writeState); syncing lets the store write the _synced tables.
	`CREATE TABLE IF NOT EXISTS _volt_flags (id INTEGER PRIMARY KEY CHECK (id = 1), ltx INTEGER NOT NULL, syncing INTEGER NOT NULL)`,
	`INSERT OR IGNORE INTO _volt_flags VALUES (1, 0, 0)`,
	`UPDATE _volt_flags SET syncing = 0`,
	// shapes: one row per local table: the server table, the shape's
	// position, its schema and the LSN of its last up-to-date.
	`CREATE TABLE IF NOT EXISTS _volt_shapes (tbl TEXT PRIMARY KEY, source TEXT NOT NULL, handle TEXT NOT NULL DEFAULT '',
		"offset" TEXT NOT NULL DEFAULT '-1', schema TEXT NOT NULL, lsn INTEGER NOT NULL DEFAULT 0)`,
	outboxDDL,
	txnsDDL,
	`CREATE UNIQUE INDEX IF NOT EXISTS _volt_txns_seq ON _volt_txns(seq) WHERE seq IS NOT NULL`,
	// echo: txids seen (as the last change of their transaction) in a
	// table's shape while writes of ours were in flight.
	`CREATE TABLE IF NOT EXISTS _volt_echo (tbl TEXT NOT NULL, txid INTEGER NOT NULL, PRIMARY KEY (tbl, txid)) WITHOUT ROWID`,
	rowTagsDDL,
}

// outboxDDL: the mutations of local transactions, in order: clustered by
// local transaction (ltx) and then id, which grows with every entry, so
// that a transaction's entries are one range and a local write writes one
// b-tree for the outbox. (There is no index by row: rollback, a rare
// event, reads the outbox whole instead.)
const outboxDDL = `CREATE TABLE IF NOT EXISTS _volt_outbox (ltx INTEGER NOT NULL, id INTEGER NOT NULL, tbl TEXT NOT NULL,
		op TEXT NOT NULL, key TEXT NOT NULL, vals TEXT, PRIMARY KEY (ltx, id)) WITHOUT ROWID`

// txnsDDL: a row per local transaction that the Syncer has taken up: its
// seq once it is bound for the server (unique: the partial index holds
// only rows that have one), its state (pending, accepted) and what the
// server answered. Update writes no row (it would cost every local write
// a page): a transaction in the outbox without a row is pending and
// unsent, like one whose row has no seq; those are all after the last
// row (see loadPending).
const txnsDDL = `CREATE TABLE IF NOT EXISTS _volt_txns (ltx INTEGER PRIMARY KEY, seq INTEGER, state TEXT NOT NULL DEFAULT 'pending',
		txid INTEGER, lsn INTEGER NOT NULL DEFAULT 0)`

// Update runs fn in a write transaction: one client transaction. The
// writes fn makes to the views (<table>) land in the overlay and the
// outbox atomically. Update commits when fn returns nil and rolls back
// when it returns an error or panics; fn must not commit or roll back.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.update(func(tx *Tx) error {
		ltx := db.ltx + 1
		db.ws.start(ltx)
		defer db.ws.stop()
		if err := fn(tx); err != nil {
			return err
		}
		if db.ws.used.Load() {
			db.ltx = ltx // (a failed commit leaves a gap, which is harmless)
		}
		return nil
	})
}

// keepLtx records the last local transaction id in _volt_flags before
// _volt_txns loses rows, so that ids are not handed out twice after a
// restart. The caller holds db.wmu.
func (tx *Tx) keepLtx() error {
	_, err := tx.exec(true, `UPDATE _volt_flags SET ltx = ?1 WHERE ltx < ?1`, tx.db.ltx)
	return err
}

// View runs fn in a read transaction: a consistent snapshot.
func (db *DB) View(fn func(*Tx) error) error {
	stx, err := db.sql.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer stx.Rollback()
	return fn(&Tx{tx: conn{stx}, db: db})
}

// update runs fn in a write transaction and tells watchers what changed.
// It rolls back when fn returns an error or panics, or the commit fails.
func (db *DB) update(fn func(*Tx) error) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if _, err := db.beginSt.Exec(); err != nil {
		return err
	}
	tx := &Tx{tx: conn{db.w}, db: db, writable: true}
	committed := false
	defer func() {
		tx.finish()
		if !committed {
			_, _ = db.abortSt.Exec()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	tx.closeRows()
	if _, err := db.commitSt.Exec(); err != nil {
		return err
	}
	committed = true
	db.wrote()
	for _, f := range tx.after {
		f()
	}
	db.changed(tx.touched)
	return nil
}
