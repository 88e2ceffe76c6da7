package auth

import (
	"context"
	"errors"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/shape"
)

// Allow decides, before anything runs, whether a mutation's table,
// operation and columns are allowed; it is a mutations.AllowFunc. A table
// without a rule is refused whether it exists or not.
func (r *Rules) Allow(_ context.Context, _ any, m volt.Mutation) error {
	_, err := r.allowed(m)
	return err
}

// allowed returns the table's rule when it allows m's operation and
// columns.
func (r *Rules) allowed(m volt.Mutation) (*tableRule, error) {
	t, err := r.rule(m.Table)
	if err != nil {
		return nil, err
	}
	if !t.ops[m.Op] {
		return nil, forbidden("%s of %s is not allowed", m.Op, t.table)
	}
	return t, t.checkColumns(m)
}

// Check authorises one row mutation against the rules; it is a
// mutations.CheckFunc (see there for when it is called). The principal is
// the request's Claims (nil for an anonymous request: every claim is then
// NULL). A refusal is a *mutations.Rejection with code forbidden, which
// rolls the client transaction back. An update or delete of a missing row
// (both rows nil) on a table with a check is refused exactly like one of a
// row that fails the check, so the answer does not tell whether it exists.
//
// A check with subqueries is evaluated by Postgres inside the mutation's
// transaction (mutations.CheckTx; CheckUsesTx makes the handler provide
// it), so its subqueries see the transaction's own writes.
func (r *Rules) Check(ctx context.Context, principal any, m volt.Mutation, oldRow, newRow map[string]any) error {
	t, err := r.allowed(m)
	if err != nil {
		return err
	}
	if t.check == nil {
		return nil
	}
	claims := asClaims(principal)
	if oldRow == nil && newRow == nil {
		return hiddenRow(m, t)
	}
	if oldRow != nil {
		if ok, err := t.holds(ctx, claims, oldRow); err != nil || !ok {
			if transientCheck(err) {
				return err
			}
			return hiddenRow(m, t)
		}
	}
	if newRow != nil {
		return t.checkRow(ctx, claims, m, newRow, "the new row")
	}
	return nil
}

// CheckUsesTx reports whether m's Check queries its transaction (the
// table's check has subqueries); it is a mutations.Options.CheckUsesTx.
func (r *Rules) CheckUsesTx(m volt.Mutation) bool {
	t, err := r.rule(m.Table)
	return err == nil && t.check != nil && t.check.plans != nil
}

// holds evaluates the table's check on row: in Go, or with subqueries in
// Postgres inside the mutation's transaction.
func (t *tableRule) holds(ctx context.Context, claims Claims, row map[string]any) (bool, error) {
	if t.check.plans == nil {
		return t.check.holds(claims, row)
	}
	tx := mutations.CheckTx(ctx)
	if tx == nil {
		return false, errors.New("a check with subqueries needs the mutation's transaction (mutations.Options.CheckUsesTx)")
	}
	return t.check.holdsIn(ctx, tx, claims, row)
}

// hiddenRow refuses an update or delete of a row that is missing or fails
// the check, with one answer for both.
func hiddenRow(m volt.Mutation, t *tableRule) error {
	return forbidden("%s of %s: the row does not exist or does not pass the table's check", m.Op, t.table)
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

func (t *tableRule) checkRow(ctx context.Context, claims Claims, m volt.Mutation, row map[string]any, which string) error {
	ok, err := t.holds(ctx, claims, row)
	if transientCheck(err) {
		return err
	}
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
