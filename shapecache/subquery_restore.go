package shapecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/shapelog"
	"github.com/voltsync/volt/where"
)

// A shape with subqueries survives a restart (issue 16 item 3): the
// catalog lists it like any shape, but its dependency state (views,
// counts, nested rows) is not persisted. At restore it gets an sqState
// whose views are not known yet, the state of a new shape before its
// snapshot: its own table's transactions are buffered (sqState.raw) and
// the dependency changes routed meanwhile too (sqState.early). A resync
// then reads, in one REPEATABLE READ transaction at snapshot S, the views
// and the shape's rows with their metadata, rebuilds from the log what
// its clients hold, and appends one synthetic transaction, the difference
// (deletes, inserts, updates with removed_tags), at the offsets of
// synthetic entries (the log's last offset, op+1, subqueries.md §7.5).
// It then installs the views as of S, with S as the shape's snapshot, so
// the transactions S holds are skipped and the later ones converted as
// usual. A dependency change routed during the resync that S does not
// hold and that moves a value makes it start over with a later snapshot.
// Clients keep their handle and offset; while the resync runs they are
// served the log as it was.

// maxResyncAttempts bounds the resyncs of one shape that dependency moves
// can start over; past it the shape is removed (409).
const maxResyncAttempts = 50

// restoreSubquery rebuilds a catalogued shape with subqueries: its plan
// (the subquery tables as the database has them now) and an sqState
// without views. A where clause that no longer compiles, or a table that
// is gone, is an error: the shape is dropped (its clients get 409).
func (c *Cache) restoreSubquery(r catalogRecord) (*Entry, error) {
	if !c.Subqueries {
		return nil, errors.New("subqueries are not enabled")
	}
	if r.Definition.Log == shape.LogChangesOnly {
		// Its clients' rows came from subsets the log does not hold, so
		// the log cannot tell what they lack.
		return nil, errors.New("log=changes_only shapes with subqueries are not restored")
	}
	ctx := c.ctx
	s, err := c.shapes.NewWithSubqueries(*r.Definition, r.Table, c.whereTables(ctx))
	if err != nil {
		return nil, err
	}
	if s.Plan() == nil || s.Key != r.Key {
		return nil, errors.New("the where clause no longer compiles to the same shape")
	}
	sq, err := c.newSubqueryState(ctx, s, r.Handle)
	if err != nil {
		return nil, err
	}
	s.SetTagPrefix(sq.prefix)
	e := newEntry(c, r.Handle, s)
	e.sq = sq
	return e, nil
}

// startResync runs e's resync in the background.
func (c *Cache) startResync(e *Entry) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		start := time.Now()
		err := c.resync(e)
		switch {
		case err == nil:
			c.Logger.Info("shape with subqueries resynced", "handle", e.Handle, "duration", time.Since(start))
		case e.IsGone() || c.ctx.Err() != nil:
		default:
			c.Logger.Warn("resync of a shape with subqueries failed", "handle", e.Handle, "err", err)
			c.mu.Lock()
			c.removeLocked(e, "resync after restart failed")
			c.mu.Unlock()
		}
	}()
}

// errResyncMoved is a resync overtaken by a dependency move.
var errResyncMoved = errors.New("a dependency moved during the resync")

// resync brings a restored shape with subqueries up to date (see above).
func (c *Cache) resync(e *Entry) error {
	select {
	case c.snapSlots <- struct{}{}:
		defer func() { <-c.snapSlots }()
	case <-c.ctx.Done():
		return c.ctx.Err()
	case <-e.gone:
		return ErrShapeGone
	}
	l, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.release()
	// Nothing is appended to the log until the views are installed, so
	// what its clients hold is read once.
	held, err := materialiseLog(l)
	if err != nil {
		return fmt.Errorf("read the shape's log: %w", err)
	}
	for range maxResyncAttempts {
		info, views, rows, err := c.readResync(e)
		if err != nil {
			return err
		}
		err = c.installResync(e, l, info, views, resyncDiff(e.Shape, held, rows))
		if !errors.Is(err, errResyncMoved) {
			return err
		}
		c.Logger.Debug("resync overtaken by a dependency move: starting over", "handle", e.Handle)
	}
	return fmt.Errorf("%w %d times", errResyncMoved, maxResyncAttempts)
}

// readResync reads the views and the shape's rows (as snapshot rows with
// their metadata) in one REPEATABLE READ transaction.
func (c *Cache) readResync(e *Entry) (info postgres.SnapshotInfo, views []*where.View, rows []sqsRow, err error) {
	ps, ok := c.Snapshotter.(*postgres.Snapshotter)
	if !ok {
		return info, nil, nil, errors.New("shapes with subqueries need a postgres.Snapshotter")
	}
	ctx := c.ctx
	tx, err := ps.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return info, nil, nil, fmt.Errorf("begin resync: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, displaySettings); err != nil {
		return info, nil, nil, fmt.Errorf("resync settings: %w", err)
	}
	var snap string
	if err := tx.QueryRow(ctx, "SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn() - '0/0'::pg_lsn").Scan(&snap, &info.LSN); err != nil {
		return info, nil, nil, fmt.Errorf("read resync snapshot: %w", err)
	}
	if info.Snapshot, err = parseSnapshot(snap); err != nil {
		return info, nil, nil, err
	}
	s := e.Shape
	plan := e.sq.plan
	views = make([]*where.View, len(plan.Deps))
	b := c.subqueryBudget()
	for i, d := range e.sq.deps {
		if views[i], err = readSqDep(ctx, tx, d, b); err != nil {
			return info, nil, nil, err
		}
	}
	var cols []string
	for _, i := range s.SnapshotColumns() {
		cols = append(cols, postgres.QuoteIdent(s.Table.Columns[i].Name))
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + quoteQualified(s.Table.Schema, s.Table.Name) + " WHERE " + plan.WhereSQL(nil)
	rs, err := tx.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return info, nil, nil, fmt.Errorf("resync query: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		raw, _, err := s.SnapshotRowWithViews(rs.RawValues(), views, e.sq.prefix)
		if err != nil {
			return info, nil, nil, fmt.Errorf("resync row metadata: %w", err)
		}
		var m sqsMsg
		if err := json.Unmarshal(raw, &m); err != nil {
			return info, nil, nil, fmt.Errorf("resync row: %w", err)
		}
		rows = append(rows, sqsRow{key: m.Key, value: m.Value, tags: m.Headers.Tags, conds: m.Headers.Conds, raw: raw})
	}
	if err := rs.Err(); err != nil {
		return info, nil, nil, fmt.Errorf("resync rows: %w", err)
	}
	return info, views, rows, tx.Commit(ctx)
}

// installResync appends the difference and installs the views as of si,
// unless a dependency change routed since restore that si does not hold
// moves a value (errResyncMoved: the caller starts over).
func (c *Cache) installResync(e *Entry, l *shapelog.Log, si postgres.SnapshotInfo, views []*where.View, diff [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.IsGone() {
		return ErrShapeGone
	}
	inSnapshot := func(tx *volt.Transaction) bool { return tx.CommitLSN < si.LSN && si.Visible(tx.Xid) }
	for _, ec := range e.sq.early {
		if !inSnapshot(ec.tx) && e.sq.apply(ec.ch) {
			return errResyncMoved // the counts are read again
		}
	}
	e.sq.early = nil
	if len(diff) > 0 {
		at := l.Latest()
		if at.LSN == 0 {
			at = volt.Offset{LSN: 1, Op: 0}
		} else {
			at.Op++
		}
		entries := make([]shapelog.Entry, len(diff))
		for i, m := range diff {
			entries[i] = shapelog.Entry{Offset: at, JSON: m}
			at.Op++
		}
		if err := e.append(l, entries); err != nil {
			return err
		}
		e.ops += int64(len(diff))
		c.dirty[e] = struct{}{}
	}
	e.snap = &si
	e.sq.views, e.sq.cur = views, views
	return c.appendRawLocked(e, l, views)
}

// sqsMsg is what the resync reads of a log entry.
type sqsMsg struct {
	Key      string         `json:"key"`
	Value    map[string]any `json:"value"`
	OldValue map[string]any `json:"old_value"`
	Headers  struct {
		Operation string   `json:"operation"`
		Event     string   `json:"event"`
		Tags      []string `json:"tags"`
		Removed   []string `json:"removed_tags"`
		Conds     []bool   `json:"active_conditions"`
		Patterns  []struct {
			Pos   int    `json:"pos"`
			Value string `json:"value"`
		} `json:"patterns"`
	} `json:"headers"`
}

// sqsRow is a row as a client holds it (or as the resync's snapshot has
// it, with raw its snapshot message).
type sqsRow struct {
	key   string
	value map[string]any
	tags  []string
	conds []bool
	raw   []byte
}

// materialiseLog applies the log's messages as a client does
// (subqueries.md §9): rows by key with their merged value, tags and
// active_conditions; a move-out clears the conditions of the positions
// its patterns match and drops rows left in no disjunct, a move-in sets
// them.
func materialiseLog(l *shapelog.Log) (map[string]*sqsRow, error) {
	rows := map[string]*sqsRow{}
	after := volt.BeforeAll
	for {
		res, err := l.Read(after)
		if err != nil {
			return nil, err
		}
		for _, b := range res.Entries {
			var m sqsMsg
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, fmt.Errorf("log entry: %w", err)
			}
			applyHeld(rows, &m)
		}
		if res.AtHead || res.End == after {
			return rows, nil
		}
		after = res.End
	}
}

func applyHeld(rows map[string]*sqsRow, m *sqsMsg) {
	h := &m.Headers
	switch h.Operation {
	case "insert", "update":
		r := rows[m.Key]
		if r == nil {
			r = &sqsRow{key: m.Key, value: map[string]any{}}
			rows[m.Key] = r
		}
		for k, v := range m.Value {
			r.value[k] = v
		}
		for _, t := range h.Tags {
			if !slices.Contains(r.tags, t) {
				r.tags = append(r.tags, t)
			}
		}
		r.tags = slices.DeleteFunc(r.tags, func(t string) bool { return slices.Contains(h.Removed, t) && !slices.Contains(h.Tags, t) })
		if len(h.Conds) > 0 {
			r.conds = slices.Clone(h.Conds)
		}
		return
	case "delete":
		delete(rows, m.Key)
		return
	}
	if h.Event != "move-out" && h.Event != "move-in" {
		return
	}
	for key, r := range rows {
		hit := false
		for _, p := range h.Patterns {
			if p.Pos < len(r.conds) && tagSlotMatches(r.tags, p.Pos, p.Value) {
				r.conds[p.Pos] = h.Event == "move-in"
				hit = true
			}
		}
		if hit && h.Event == "move-out" && !inSomeDisjunct(r) {
			delete(rows, key)
		}
	}
}

// tagSlotMatches reports whether slot pos of one of tags is value.
func tagSlotMatches(tags []string, pos int, value string) bool {
	for _, t := range tags {
		slots := strings.Split(t, "/")
		if pos < len(slots) && slots[pos] == value {
			return true
		}
	}
	return false
}

// inSomeDisjunct reports whether some disjunct (a tag: its non-empty
// slots) has every one of its positions' conditions true.
func inSomeDisjunct(r *sqsRow) bool {
	for _, t := range r.tags {
		all := true
		for p, slot := range strings.Split(t, "/") {
			if slot != "" && (p >= len(r.conds) || !r.conds[p]) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// resyncDiff renders the messages that take clients holding held to the
// rows now: a delete for each row they hold that is gone, an insert for
// each they lack, an update (with removed_tags) for each whose value,
// tags or active_conditions differ.
func resyncDiff(s *shape.Shape, held map[string]*sqsRow, now []sqsRow) [][]byte {
	rel, _ := json.Marshal([]string{s.Table.Schema, s.Table.Name})
	full := s.Def.Replica == shape.ReplicaFull
	var out [][]byte
	seen := make(map[string]bool, len(now))
	for _, r := range now {
		seen[r.key] = true
		h := held[r.key]
		if h == nil {
			out = append(out, r.raw)
			continue
		}
		if reflect.DeepEqual(h.value, r.value) && sameTags(h.tags, r.tags) && slices.Equal(h.conds, r.conds) {
			continue
		}
		hdr := map[string]any{"operation": "update", "relation": json.RawMessage(rel), "tags": r.tags,
			"removed_tags": nonNil(tagsNotIn(h.tags, r.tags)), "active_conditions": r.conds}
		msg := map[string]any{"key": r.key, "value": r.value, "headers": hdr}
		if full {
			msg["old_value"] = h.value
		}
		b, _ := json.Marshal(msg)
		out = append(out, b)
	}
	keys := make([]string, 0, len(held))
	for k := range held {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		h := held[k]
		val := h.value
		if !full && len(s.Table.PrimaryKey) > 0 {
			val = map[string]any{}
			for _, c := range s.Table.PrimaryKey {
				if v, ok := h.value[c]; ok {
					val[c] = v
				}
			}
		}
		hdr := map[string]any{"operation": "delete", "relation": json.RawMessage(rel), "tags": nonNil(h.tags), "active_conditions": h.conds}
		b, _ := json.Marshal(map[string]any{"key": k, "value": val, "headers": hdr})
		out = append(out, b)
	}
	return out
}

func sameTags(a, b []string) bool {
	return len(tagsNotIn(a, b)) == 0 && len(tagsNotIn(b, a)) == 0
}

// tagsNotIn returns the tags of a that b lacks.
func tagsNotIn(a, b []string) []string {
	var out []string
	for _, t := range a {
		if !slices.Contains(b, t) {
			out = append(out, t)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
