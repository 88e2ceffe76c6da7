package mutations

import (
	"context"
	"encoding/json"

	"github.com/voltsync/volt"
)

// step is one prepared mutation: a row mutation or a named one.
type step struct {
	row  *rowOp
	name string
	fn   NamedFunc
	args json.RawMessage
}

// prepare validates the client transaction and orders its row mutations by
// the FK graph. On a rejection it also returns the steps prepared so far,
// whose rows later transactions then depend on.
func (h *Handler) prepare(ctx context.Context, q querier, ct volt.ClientTransaction) ([]step, error) {
	steps := make([]step, 0, len(ct.Mutations))
	for _, m := range ct.Mutations {
		s, err := h.prepareStep(ctx, q, m)
		if err != nil {
			return steps, err
		}
		steps = append(steps, s)
	}
	return h.order(ctx, q, steps)
}

func (h *Handler) prepareStep(ctx context.Context, q querier, m volt.Mutation) (step, error) {
	if m.Op != "" || m.Name == "" {
		row, err := h.prepareRow(ctx, q, m)
		return step{row: row}, err
	}
	if m.Table != "" || m.Key != nil || m.Values != nil || m.Original != nil {
		return step{}, Reject(volt.CodeInvalid, "named mutation %q takes args, not table, key or values", m.Name)
	}
	fn := h.namedFunc(m.Name)
	if fn == nil {
		return step{}, Reject(volt.CodeInvalid, "unknown mutation %q", m.Name)
	}
	return step{name: m.Name, fn: fn, args: m.Args}, nil
}

// order reorders each run of row mutations between named ones.
func (h *Handler) order(ctx context.Context, q querier, steps []step) ([]step, error) {
	rows := 0
	for _, s := range steps {
		if s.row != nil {
			rows++
		}
	}
	if rows < 2 {
		return steps, nil
	}
	fks, err := h.catalog.foreignKeys(ctx, q)
	if err != nil {
		return steps, err
	}
	for i := 0; i < len(steps); {
		j := i
		var run []*rowOp
		for ; j < len(steps) && steps[j].row != nil; j++ {
			run = append(run, steps[j].row)
		}
		for k, op := range orderRows(run, fks) {
			steps[i+k] = step{row: op}
		}
		i = j + 1
	}
	return steps, nil
}

// identities returns the row identities of a stored transaction, for
// dependency tracking on replays; mutations that no longer validate are
// skipped.
func (h *Handler) identities(ctx context.Context, q querier, ct volt.ClientTransaction) []string {
	var ids []string
	for _, m := range ct.Mutations {
		if m.Op == "" {
			continue
		}
		if op, err := h.prepareRow(ctx, q, m); err == nil {
			ids = append(ids, op.ids...)
		}
	}
	return ids
}

func idsOf(steps []step) []string {
	var ids []string
	for _, s := range steps {
		if s.row != nil {
			ids = append(ids, s.row.ids...)
		}
	}
	return ids
}

// dependencies tracks, within one request, the rows that rejected
// transactions touched.
type dependencies struct {
	rejected map[string]int64 // row identity → seq of the rejected transaction
}

func newDependencies() *dependencies { return &dependencies{rejected: map[string]int64{}} }

func (d *dependencies) reject(seq int64, ids []string) {
	for _, id := range ids {
		if _, ok := d.rejected[id]; !ok {
			d.rejected[id] = seq
		}
	}
}

// blocking returns the seq of a rejected transaction that touched a row the
// steps touch.
func (d *dependencies) blocking(steps []step) (int64, bool) {
	for _, s := range steps {
		if s.row == nil {
			continue
		}
		for _, id := range s.row.ids {
			if seq, ok := d.rejected[id]; ok {
				return seq, true
			}
		}
	}
	return 0, false
}

// restore makes d what from was.
func (d *dependencies) restore(from *dependencies) {
	d.rejected = from.clone().rejected
}

func (d *dependencies) clone() *dependencies {
	c := newDependencies()
	for id, seq := range d.rejected {
		c.rejected[id] = seq
	}
	return c
}
