package localstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/internal/backoff"
)

// SyncerOptions configure a Syncer. All are optional.
type SyncerOptions struct {
	// MaxBatch bounds the local transactions sent in one request
	// (client.DefaultMaxBatch).
	MaxBatch int
	// OnError, when set, is told about every failed round before the
	// Syncer waits and tries again.
	OnError func(error)
	// MinBackoff and MaxBackoff bound the waits after failures
	// (client.DefaultMinBackoff, client.DefaultMaxBackoff): the n-th
	// failed round in a row waits a random time up to min(MaxBackoff,
	// MinBackoff·2ⁿ), as the client's retries do.
	MinBackoff, MaxBackoff time.Duration
}

// Syncer sends the outbox to volt's write endpoint, oldest local
// transaction first, with a client.Writer. Each local transaction gets
// its seq (persisted in _volt_txns) before it is first sent and keeps it
// for every resend, in this process or after a restart, so the server
// applies it exactly once. Create it with NewSyncer and call Run on one
// goroutine; run one Syncer per DB.
type Syncer struct {
	db      *DB
	c       *client.Client
	opts    SyncerOptions
	isolate bool // send one transaction per request (after a 4xx)
	retry   backoff.Backoff
}

// NewSyncer returns a Syncer that sends db's outbox through c (its URL,
// credentials and HTTP client).
func (db *DB) NewSyncer(c *client.Client, opts SyncerOptions) (*Syncer, error) {
	if c == nil {
		return nil, errors.New("localstore: NewSyncer needs a client.Client")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = client.DefaultMaxBatch
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = client.DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = client.DefaultMaxBackoff
	}
	retry := backoff.Backoff{Initial: opts.MinBackoff, Max: opts.MaxBackoff, Jitter: backoff.Full}
	return &Syncer{db: db, c: c, opts: opts, retry: retry}, nil
}

// outTx is a local transaction bound for the server.
type outTx struct {
	ltx, seq int64
	// sentBefore: its seq was given in an earlier round (or process), so
	// the server may already have it.
	sentBefore bool
	muts       []volt.Mutation
}

// Run sends the outbox until ctx ends, and returns ctx's cause. It waits
// for new local transactions when the outbox is empty, and retries
// failures with backoff.
func (s *Syncer) Run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		batch, err := s.next()
		if err == nil && len(batch) > 0 {
			err = s.send(ctx, batch)
		} else if err == nil {
			err = s.wait(ctx, time.Second)
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil {
			if s.opts.OnError != nil {
				s.opts.OnError(err)
			}
			if err := s.wait(ctx, s.retry.Next()); err != nil {
				return err
			}
			continue
		}
		s.retry.Reset()
	}
}

// Pending returns the number of local transactions not yet decided by
// the server.
func (db *DB) Pending() (int, error) {
	var n int
	err := db.sql.QueryRow(`SELECT (SELECT count(*) FROM _volt_txns WHERE state = 'pending') + (SELECT count(DISTINCT ltx)
		FROM _volt_outbox WHERE ltx > (SELECT coalesce(max(ltx), 0) FROM _volt_txns))`).Scan(&n)
	return n, err
}

func (s *Syncer) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.db.outbox:
	case <-t.C:
	}
	return nil
}

// next loads the oldest pending local transactions and gives those
// without a seq the next ones, durably, before they are sent.
func (s *Syncer) next() ([]*outTx, error) {
	limit := s.opts.MaxBatch
	if s.isolate {
		limit = 1
	}
	var batch []*outTx
	err := s.db.update(func(tx *Tx) error {
		var err error
		if batch, err = loadPending(tx, limit); err != nil {
			return err
		}
		return assignSeqs(tx, batch)
	})
	return batch, err
}

// loadPending loads the oldest pending local transactions: those with a
// _volt_txns row still pending, then the ones only in the outbox (Update
// writes no row: assignSeqs does). A transaction gets its row when it is
// among the oldest pending, so every outbox entry up to the last row's
// ltx has a row, and the ones after it have none.
func loadPending(tx *Tx, limit int) ([]*outTx, error) {
	var batch []*outTx
	add := func(query string, args ...any) error {
		rs, err := tx.tx.Query(query, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			t := &outTx{}
			if err := rs.Scan(&t.ltx, &t.seq); err != nil {
				return err
			}
			t.sentBefore = t.seq > 0
			batch = append(batch, t)
		}
		return rs.Err()
	}
	if err := add(`SELECT ltx, coalesce(seq, 0) FROM _volt_txns WHERE state = 'pending' ORDER BY ltx LIMIT ?`, limit); err != nil {
		return nil, err
	}
	if len(batch) < limit {
		if err := add(`SELECT DISTINCT ltx, 0 FROM _volt_outbox WHERE ltx > (SELECT coalesce(max(ltx), 0) FROM _volt_txns)
			ORDER BY ltx LIMIT ?`, limit-len(batch)); err != nil {
			return nil, err
		}
	}
	sources, err := sourceNames(tx)
	if err != nil {
		return nil, err
	}
	for _, t := range batch {
		if t.muts, err = loadMutations(tx, t.ltx, sources); err != nil {
			return nil, err
		}
	}
	return batch, nil
}

// sourceNames maps local tables to server tables.
func sourceNames(tx *Tx) (map[string]string, error) {
	rs, err := tx.tx.Query(`SELECT tbl, source FROM _volt_shapes`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	m := map[string]string{}
	for rs.Next() {
		var t, src string
		if err := rs.Scan(&t, &src); err != nil {
			return nil, err
		}
		m[t] = src
	}
	return m, rs.Err()
}

// loadMutations turns a local transaction's outbox entries into
// mutations. Inserts leave out NULL values, so that server defaults
// apply.
func loadMutations(tx *Tx, ltx int64, sources map[string]string) ([]volt.Mutation, error) {
	rs, err := tx.tx.Query(`SELECT tbl, op, key, coalesce(vals, '') FROM _volt_outbox WHERE ltx = ? ORDER BY id`, ltx)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var muts []volt.Mutation
	for rs.Next() {
		var tbl, op, key, vals string
		if err := rs.Scan(&tbl, &op, &key, &vals); err != nil {
			return nil, err
		}
		m, err := mutation(tbl, op, key, vals, sources)
		if err != nil {
			return nil, fmt.Errorf("localstore: outbox of local transaction %d: %w", ltx, err)
		}
		muts = append(muts, m)
	}
	return muts, rs.Err()
}

func mutation(tbl, op, key, vals string, sources map[string]string) (volt.Mutation, error) {
	m := volt.Mutation{Op: op, Table: tbl}
	if src := sources[tbl]; src != "" {
		m.Table = src
	}
	var err error
	if m.Values, err = decodeValues(vals); err != nil {
		return m, err
	}
	if op == volt.OpInsert {
		for k, v := range m.Values {
			if v == nil {
				delete(m.Values, k)
			}
		}
		return m, nil
	}
	m.Key, err = decodeValues(key)
	return m, err
}

// assignSeqs gives the transactions without a seq the next ones.
func assignSeqs(tx *Tx, batch []*outTx) error {
	var next int64
	if err := tx.tx.QueryRow(`SELECT v FROM _volt_meta WHERE k = 'next_seq'`).Scan(&next); err != nil {
		return err
	}
	n := next
	for _, t := range batch {
		if t.seq > 0 {
			continue
		}
		t.seq = n
		n++
		if _, err := tx.tx.Exec(`INSERT INTO _volt_txns(ltx, seq) VALUES (?1, ?2) ON CONFLICT (ltx) DO UPDATE SET seq = ?2`, t.ltx, t.seq); err != nil {
			return err
		}
	}
	if n == next {
		return nil
	}
	_, err := tx.tx.Exec(`UPDATE _volt_meta SET v = ? WHERE k = 'next_seq'`, n)
	return err
}
