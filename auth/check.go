package auth

import (
	"context"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/shape"
)

// Check authorises one applied row mutation against the rules; it is a
// mutations.CheckFunc. The principal is the request's Claims (nil for an
// anonymous request: every claim is then NULL). A refusal is a
// *mutations.Rejection with code forbidden, which rolls the client
// transaction back.
func (r *Rules) Check(_ context.Context, principal any, m volt.Mutation, oldRow, newRow map[string]any) error {
	t, err := r.rule(m.Table)
	if err != nil {
		return err
	}
	if !t.ops[m.Op] {
		return forbidden("%s of %s is not allowed", m.Op, t.table)
	}
	if err := t.checkColumns(m); err != nil {
		return err
	}
	if t.check == nil {
		return nil
	}
	claims := asClaims(principal)
	if oldRow != nil {
		if err := t.checkRow(claims, m, oldRow, "the row"); err != nil {
			return err
		}
	}
	if newRow != nil {
		return t.checkRow(claims, m, newRow, "the new row")
	}
	return nil
}

// rule finds the table's rule; a table without one is not writable.
func (r *Rules) rule(table string) (*tableRule, error) {
	schema, name, err := shape.ParseRelation(table)
	if err != nil {
		return nil, forbidden("table %q is not writable", table)
	}
	t := r.tables[schema+"."+name]
	if t == nil {
		return nil, forbidden("table %s.%s is not writable: it has no rule", schema, name)
	}
	return t, nil
}

// checkColumns refuses values for columns outside the writable list. The
// key of an update or delete only identifies the row; an insert's key is
// written, so it must be writable.
func (t *tableRule) checkColumns(m volt.Mutation) error {
	if t.columns == nil {
		return nil
	}
	sets := [][]string{sortedKeys(m.Values)}
	if m.Op == volt.OpInsert {
		sets = append(sets, sortedKeys(m.Key))
	}
	for _, names := range sets {
		for _, n := range names {
			if !t.columns[n] {
				return forbidden("%s of %s: column %q is not writable", m.Op, t.table, n)
			}
		}
	}
	return nil
}

func (t *tableRule) checkRow(claims Claims, m volt.Mutation, row map[string]any, which string) error {
	ok, err := t.check.holds(claims, row)
	if err != nil {
		return forbidden("%s of %s: the check cannot be evaluated on %s: %v", m.Op, t.table, which, err)
	}
	if !ok {
		return forbidden("%s of %s: %s does not pass the table's check", m.Op, t.table, which)
	}
	return nil
}

func forbidden(format string, args ...any) error {
	return mutations.Reject(volt.CodeForbidden, format, args...)
}
