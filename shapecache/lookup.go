package shapecache

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
)

// What the HTTP layer asks of the database goes through the cache: table
// lookups, subset snapshots and the successor of a removed shape.

// ErrTableNotFound is returned by Table for a table the catalog does not
// have (postgres.ErrTableNotFound).
var ErrTableNotFound = postgres.ErrTableNotFound

// tableLookups shares catalog queries: requests that look up a table while
// a query for it is running wait for that query instead of sending their
// own. Nothing is kept once a query ends, so a lookup never answers from
// before its request's arrival by more than one query's time.
type tableLookups struct {
	mu      sync.Mutex
	running map[[2]string]*tableLookup
}

type tableLookup struct {
	done   chan struct{}
	joined int // callers that waited for it besides the first (tests)
	table  *volt.Table
	err    error
}

// Table returns the definition of schema.name from the catalog, or an
// error wrapping ErrTableNotFound. Concurrent lookups of one table share
// one catalog query (run under the cache's lifetime, so a caller that
// gives up does not fail the others; Close waits for it).
func (c *Cache) Table(ctx context.Context, schema, name string) (*volt.Table, error) {
	key := [2]string{schema, name}
	tl := &c.lookups
	tl.mu.Lock()
	l, ok := tl.running[key]
	if ok {
		l.joined++
	} else {
		if tl.running == nil {
			tl.running = map[[2]string]*tableLookup{}
		}
		l = &tableLookup{done: make(chan struct{})}
		tl.running[key] = l
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			l.table, l.err = c.Inspector.Table(c.ctx, schema, name)
			tl.mu.Lock()
			delete(tl.running, key)
			tl.mu.Unlock()
			close(l.done)
		}()
	}
	tl.mu.Unlock()
	select {
	case <-l.done:
		return l.table, l.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Successor returns the shape that replaces e once e is removed (rotated
// after a schema change, compacted, deleted or expired): the same
// definition on the table as the catalog has it now, created (and its
// snapshot started) unless it exists. It fails when the table is gone or
// no longer fits the definition.
func (c *Cache) Successor(ctx context.Context, e *Entry) (*Entry, error) {
	t, err := c.Table(ctx, e.Shape.Table.Schema, e.Shape.Table.Name)
	if err != nil {
		return nil, err
	}
	sh, err := c.NewShape(ctx, e.Shape.Def, t)
	if err != nil {
		return nil, fmt.Errorf("rebuild shape %s: %w", e.Handle, err)
	}
	return c.GetOrCreate(ctx, sh)
}

// Subset is a subset snapshot of a shape: its rows that also match Where,
// ordered by OrderBy and paged by Limit and Offset.
type Subset struct {
	Where   string
	Params  map[string]string // Where's $1, $2, …
	OrderBy string
	Limit   *int // nil: no limit
	Offset  *int // nil: none
	// Queryable is the request's queryable_columns: the columns Where and
	// OrderBy may name besides the selected ones.
	Queryable []string
	// InfoOnly reads the snapshot's identity and no row (HEAD).
	InfoOnly bool
}

// SubsetError is a Subset the shape refuses, with the problems per field
// (where, order_by, limit, offset).
type SubsetError struct {
	Fields map[string][]string
}

func (e *SubsetError) Error() string {
	fields := make([]string, 0, len(e.Fields))
	for f, msgs := range e.Fields {
		fields = append(fields, f+": "+strings.Join(msgs, "; "))
	}
	sort.Strings(fields)
	return "invalid subset: " + strings.Join(fields, ", ")
}

// Subset reads sub of e's shape in a read-only snapshot of its own: info
// is called once with the snapshot's identity and LSN before any row, row
// with each row's column text (nil for NULL; the slices are valid during
// the call only). A Subset the shape refuses returns a *SubsetError before
// any query; errors from Postgres are returned as they are (ClientError
// tells those the request caused).
func (c *Cache) Subset(ctx context.Context, e *Entry, sub Subset, info func(s volt.Snapshot, lsn uint64) error, row func([][]byte) error) error {
	q, err := subsetQuery(e.Shape, sub)
	if err != nil {
		return err
	}
	return c.Snapshotter.Snapshot(ctx, q,
		func(si postgres.SnapshotInfo) error { return info(si.Snapshot, si.LSN) },
		row)
}

// subsetQuery builds the query of sub on s, or a *SubsetError.
func subsetQuery(s *shape.Shape, sub Subset) (postgres.SnapshotQuery, error) {
	errs := map[string][]string{}
	if (sub.Limit != nil || sub.Offset != nil) && sub.OrderBy == "" {
		errs["order_by"] = append(errs["order_by"], "order_by is required when limit or offset is present")
	}
	if sub.Limit != nil && *sub.Limit < 1 {
		errs["limit"] = append(errs["limit"], "must be greater than 0")
	}
	if sub.Offset != nil && *sub.Offset < 0 {
		errs["offset"] = append(errs["offset"], "must be greater than or equal to 0")
	}
	q := postgres.SnapshotQuery{Table: quoteQualified(s.Table.Schema, s.Table.Name), InfoOnly: sub.InfoOnly}
	for _, name := range s.SelectedNames() {
		q.Columns = append(q.Columns, postgres.QuoteIdent(name))
	}
	var conds []string
	if plan := s.Plan(); plan != nil {
		// The base where with live subqueries; the rows' active
		// conditions are read live too (shape.SubsetRow computes tags).
		q.Columns = q.Columns[:0]
		for _, i := range s.SnapshotColumns() {
			q.Columns = append(q.Columns, postgres.QuoteIdent(s.Table.Columns[i].Name))
		}
		q.Columns = append(q.Columns, s.SubsetConditionColumns()...)
		conds = append(conds, "("+plan.WhereSQL(nil)+")")
	} else if f, _ := s.Filter(); f != nil {
		conds = append(conds, "("+f.SQL()+")")
	}
	if sub.Where != "" {
		f, err := s.CompileWhere(sub.Where, sub.Params, sub.Queryable)
		if err != nil {
			errs["where"] = append(errs["where"], err.Error())
		} else {
			conds = append(conds, "("+f.SQL()+")")
		}
	}
	q.Where = strings.Join(conds, " AND ")
	if sub.OrderBy != "" {
		ob, err := s.ParseOrderBy(sub.OrderBy, sub.Queryable)
		if err != nil {
			errs["order_by"] = append(errs["order_by"], err.Error())
		}
		q.OrderBy = ob
	}
	if len(errs) > 0 {
		return postgres.SnapshotQuery{}, &SubsetError{Fields: errs}
	}
	if sub.Limit != nil {
		q.Limit = *sub.Limit
	}
	if sub.Offset != nil {
		q.Offset = *sub.Offset
	}
	return q, nil
}
