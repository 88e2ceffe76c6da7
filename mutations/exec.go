package mutations

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
)

// execRow applies one row mutation inside tx. With a Check, updates and
// deletes lock the row and check it before anything is written.
func (h *Handler) execRow(ctx context.Context, tx pgx.Tx, op *rowOp) error {
	ctx = withCheckTx(ctx, tx)
	switch op.m.Op {
	case volt.OpInsert:
		newRow, err := h.insert(ctx, tx, op)
		if err != nil {
			return err
		}
		return h.check(ctx, op, nil, newRow)
	case volt.OpUpdate:
		return h.update(ctx, tx, op)
	}
	return h.delete(ctx, tx, op)
}

func (h *Handler) insert(ctx context.Context, tx pgx.Tx, op *rowOp) ([]byte, error) {
	sql, args, err := insertSQL(op)
	if err != nil {
		return nil, err
	}
	return scanRow(ctx, tx, sql+" RETURNING to_jsonb(r)", args)
}

// insertSQL renders op's INSERT, without RETURNING.
func insertSQL(op *rowOp) (string, sqlArgs, error) {
	if len(op.vals) == 0 {
		return "INSERT INTO " + op.t.ident + " AS r DEFAULT VALUES", nil, nil
	}
	var args sqlArgs
	var cols, ps []string
	for _, name := range sortedKeys(op.vals) {
		p, err := args.param(op.t.cols[name], op.vals[name])
		if err != nil {
			return "", nil, err
		}
		cols, ps = append(cols, quote(name)), append(ps, p)
	}
	return fmt.Sprintf("INSERT INTO %s AS r (%s) VALUES (%s)", op.t.ident, strings.Join(cols, ", "), strings.Join(ps, ", ")), args, nil
}

func (h *Handler) update(ctx context.Context, tx pgx.Tx, op *rowOp) error {
	var oldRow []byte
	if h.locks(op) {
		var err error
		if oldRow, err = h.lockRow(ctx, tx, op); err != nil {
			return err
		}
		if len(op.vals) == 0 {
			return h.check(ctx, op, oldRow, oldRow)
		}
	}
	sql, args, err := updateSQL(op)
	if err != nil {
		return err
	}
	newRow, err := scanRow(ctx, tx, sql+" RETURNING to_jsonb(r)", args)
	if err != nil {
		return err
	}
	if newRow == nil {
		return missing(op)
	}
	return h.check(ctx, op, oldRow, newRow)
}

// updateSQL renders op's UPDATE of its key, without RETURNING; op has
// values.
func updateSQL(op *rowOp) (string, sqlArgs, error) {
	var args sqlArgs
	var sets []string
	for _, name := range sortedKeys(op.vals) {
		p, err := args.param(op.t.cols[name], op.vals[name])
		if err != nil {
			return "", nil, err
		}
		sets = append(sets, quote(name)+" = "+p)
	}
	where, err := args.where(op.t, op.m.Key)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("UPDATE %s AS r SET %s WHERE %s", op.t.ident, strings.Join(sets, ", "), where), args, nil
}

// delete removes the row; with a Check, lockRow has checked it.
func (h *Handler) delete(ctx context.Context, tx pgx.Tx, op *rowOp) error {
	if h.locks(op) {
		if _, err := h.lockRow(ctx, tx, op); err != nil {
			return err
		}
	}
	sql, args, err := deleteSQL(op)
	if err != nil {
		return err
	}
	oldRow, err := scanRow(ctx, tx, sql+" RETURNING to_jsonb(r)", args)
	if err != nil {
		return err
	}
	if oldRow == nil {
		return missing(op)
	}
	return nil
}

// deleteSQL renders op's DELETE of its key, without RETURNING.
func deleteSQL(op *rowOp) (string, sqlArgs, error) {
	var args sqlArgs
	where, err := args.where(op.t, op.m.Key)
	if err != nil {
		return "", nil, err
	}
	return "DELETE FROM " + op.t.ident + " AS r WHERE " + where, args, nil
}

// locks reports whether an update or delete reads and locks its row
// before writing it (lockRow): to run the Check on it, to compare it with
// the original values, or because an update without values only checks it.
func (h *Handler) locks(op *rowOp) bool {
	return h.checked(op) || h.opts.Check != nil || (op.m.Op == volt.OpUpdate && len(op.vals) == 0)
}

// checked reports whether op's original values must still hold.
func (h *Handler) checked(op *rowOp) bool {
	return len(op.m.Original) > 0 && (h.opts.Checked[op.t.qualified()] || h.opts.Checked[op.t.name] && op.t.schema == "public")
}

// lockRow reads and locks the row, then runs the Check on it (before
// anything is written, so that a row the caller may not write is answered
// the same whether it exists or not), then compares it with the original
// values when the table is checked. A missing or changed row is a
// conflict, unless the Check says otherwise.
func (h *Handler) lockRow(ctx context.Context, tx pgx.Tx, op *rowOp) ([]byte, error) {
	var args sqlArgs
	where, err := args.where(op.t, op.m.Key)
	if err != nil {
		return nil, err
	}
	match := "true"
	if h.checked(op) {
		if match, err = args.matches(op.t, op.m.Original); err != nil {
			return nil, err
		}
	}
	sql := fmt.Sprintf("SELECT to_jsonb(r), %s FROM %s AS r WHERE %s FOR UPDATE", match, op.t.ident, where)
	var row []byte
	var same bool
	err = tx.QueryRow(ctx, sql, args...).Scan(&row, &same)
	if errors.Is(err, pgx.ErrNoRows) {
		if h.opts.Check != nil {
			if err := h.opts.Check(ctx, principalFrom(ctx), op.m, nil, nil); err != nil {
				return nil, err
			}
		}
		return nil, missing(op)
	}
	if err != nil {
		return nil, err
	}
	if err := h.check(ctx, op, row, nil); err != nil {
		return nil, err
	}
	if !same {
		return nil, &conflictError{msg: fmt.Sprintf("%s of %s: the row changed since the client read it", op.m.Op, op.t.qualified()), row: row}
	}
	return row, nil
}

// matches renders "col IS NOT DISTINCT FROM $n AND …" for original values.
func (a *sqlArgs) matches(t *table, original map[string]any) (string, error) {
	var parts []string
	for _, name := range sortedKeys(original) {
		c := t.cols[name]
		p, err := a.param(c, original[name])
		if err != nil {
			return "", err
		}
		col := "r." + quote(name)
		if c.jsonType {
			col, p = col+"::jsonb", p+"::jsonb"
		}
		parts = append(parts, "("+col+" IS NOT DISTINCT FROM "+p+")")
	}
	return "coalesce(" + strings.Join(parts, " AND ") + ", false)", nil
}

// check runs Options.Check on the rows of a row mutation.
func (h *Handler) check(ctx context.Context, op *rowOp, oldRow, newRow []byte) error {
	if h.opts.Check == nil {
		return nil
	}
	oldMap, err := decodeRow(oldRow)
	if err != nil {
		return err
	}
	newMap, err := decodeRow(newRow)
	if err != nil {
		return err
	}
	return h.opts.Check(ctx, principalFrom(ctx), op.m, oldMap, newMap)
}

func decodeRow(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode row: %w", err)
	}
	return m, nil
}
