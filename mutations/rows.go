package mutations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
)

// rowOp is a validated row mutation with its table and the identities
// (table + primary key) of the rows it touches.
type rowOp struct {
	m    volt.Mutation
	t    *table
	ids  []string
	vals map[string]any // Values, plus Key for inserts
}

// prepareRow validates m against the catalog. Errors are rejections.
func (h *Handler) prepareRow(ctx context.Context, q querier, m volt.Mutation) (*rowOp, error) {
	if m.Name != "" || m.Args != nil {
		return nil, Reject(volt.CodeInvalid, "a mutation has either op or name, not both")
	}
	switch m.Op {
	case volt.OpInsert, volt.OpUpdate, volt.OpDelete:
	default:
		return nil, Reject(volt.CodeInvalid, "unknown op %q (want insert, update or delete)", m.Op)
	}
	t, err := h.lookupTable(ctx, q, m)
	if err != nil {
		return nil, err
	}
	op := &rowOp{m: m, t: t, vals: m.Values}
	if err := op.checkColumns(); err != nil {
		return nil, err
	}
	if err := op.identify(); err != nil {
		return nil, err
	}
	return op, nil
}

// lookupTable resolves m.Table, applying the write policy before anything
// is read from the catalog: a table the caller may not write is refused the
// same way whether it exists or not.
func (h *Handler) lookupTable(ctx context.Context, q querier, m volt.Mutation) (*table, error) {
	if m.Table == "" {
		return nil, Reject(volt.CodeInvalid, "%s needs a table", m.Op)
	}
	if strings.ContainsRune(m.Table, 0) {
		return nil, Reject(volt.CodeInvalid, "invalid table name")
	}
	schema, name, err := shape.ParseRelation(m.Table)
	if err != nil {
		return nil, Reject(volt.CodeInvalid, "table %q: %v", m.Table, err)
	}
	if systemSchema(schema) || (h.opts.Check == nil && h.opts.Allow == nil && schema != "public") {
		return nil, Reject(volt.CodeForbidden, "table %s.%s is not writable", schema, name)
	}
	if h.opts.Allow != nil {
		if err := h.opts.Allow(ctx, principalFrom(ctx), m); err != nil {
			return nil, err
		}
	}
	t, err := h.catalog.table(ctx, q, schema, name, columnNames(m))
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, Reject(volt.CodeInvalid, "table %s.%s does not exist", schema, name)
	}
	return t, nil
}

// systemSchema reports schemas that are never writable: volt's own and
// Postgres' catalogs (pg_catalog, pg_toast, pg_temp_…, information_schema).
func systemSchema(schema string) bool {
	return schema == "volt" || schema == "information_schema" || strings.HasPrefix(schema, "pg_")
}

func columnNames(m volt.Mutation) []string {
	var out []string
	for _, vs := range []map[string]any{m.Key, m.Values, m.Original} {
		for k := range vs {
			out = append(out, k)
		}
	}
	return out
}

// checkColumns rejects unknown and generated columns and a wrong key.
func (op *rowOp) checkColumns() error {
	for _, vs := range []map[string]any{op.m.Key, op.m.Values, op.m.Original} {
		for name := range vs {
			c := op.t.cols[name]
			if c == nil {
				return Reject(volt.CodeInvalid, "table %s has no column %q", op.t.qualified(), name)
			}
			if c.generated && op.m.Values[name] != nil {
				return Reject(volt.CodeInvalid, "column %q of %s is generated", name, op.t.qualified())
			}
		}
	}
	if op.m.Op == volt.OpInsert {
		return op.mergeKey()
	}
	if len(op.t.pk) == 0 {
		return Reject(volt.CodeInvalid, "table %s has no primary key: only inserts are possible", op.t.qualified())
	}
	if len(op.m.Key) != len(op.t.pk) {
		return Reject(volt.CodeInvalid, "%s of %s needs key with exactly the primary key columns %s", op.m.Op, op.t.qualified(), pkNames(op.t))
	}
	for _, c := range op.t.pk {
		if _, ok := op.m.Key[c.name]; !ok {
			return Reject(volt.CodeInvalid, "%s of %s needs key with exactly the primary key columns %s", op.m.Op, op.t.qualified(), pkNames(op.t))
		}
	}
	return nil
}

// mergeKey folds an insert's key into its values.
func (op *rowOp) mergeKey() error {
	if len(op.m.Key) == 0 {
		return nil
	}
	op.vals = make(map[string]any, len(op.m.Values)+len(op.m.Key))
	for k, v := range op.m.Values {
		op.vals[k] = v
	}
	for k, v := range op.m.Key {
		if old, ok := op.vals[k]; ok && keyText(old) != keyText(v) {
			return Reject(volt.CodeInvalid, "insert into %s: key and values disagree on %q", op.t.qualified(), k)
		}
		op.vals[k] = v
	}
	return nil
}

func pkNames(t *table) string {
	var names []string
	for _, c := range t.pk {
		names = append(names, c.name)
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// identify computes the identities of the rows op touches: the key, the new
// key of an update that changes it, the inserted key when the values hold it.
func (op *rowOp) identify() error {
	if op.m.Op != volt.OpInsert {
		op.ids = append(op.ids, rowID(op.t, op.m.Key))
	}
	if op.m.Op == volt.OpDelete || len(op.t.pk) == 0 {
		return nil
	}
	key := map[string]any{}
	for _, c := range op.t.pk {
		v, ok := op.vals[c.name]
		if !ok && op.m.Op == volt.OpInsert {
			return nil // server-generated key: no later mutation can name it
		}
		if !ok {
			v = op.m.Key[c.name]
		}
		key[c.name] = v
	}
	if id := rowID(op.t, key); !slices.Contains(op.ids, id) {
		op.ids = append(op.ids, id)
	}
	return nil
}

func rowID(t *table, key map[string]any) string {
	var b strings.Builder
	b.WriteString(t.qualified())
	for _, c := range t.pk {
		b.WriteByte(0)
		b.WriteString(keyText(key[c.name]))
	}
	return b.String()
}

// sqlArgs collects positional parameters while SQL is built.
type sqlArgs []any

// param adds v for column c and returns its placeholder with the cast.
func (a *sqlArgs) param(c *column, v any) (string, error) {
	text, err := pgText(c, v)
	if err != nil {
		return "", Reject(volt.CodeInvalid, "%v", err)
	}
	*a = append(*a, text)
	return "$" + strconv.Itoa(len(*a)) + "::text::" + c.cast, nil
}

// where renders "pk = $n AND …" for the key.
func (a *sqlArgs) where(t *table, key map[string]any) (string, error) {
	var parts []string
	for _, c := range t.pk {
		p, err := a.param(c, key[c.name])
		if err != nil {
			return "", err
		}
		parts = append(parts, "r."+quote(c.name)+" = "+p)
	}
	return strings.Join(parts, " AND "), nil
}

func quote(s string) string { return pgx.Identifier{s}.Sanitize() }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// scanRow reads one to_jsonb row; nil when there is none.
func scanRow(ctx context.Context, tx pgx.Tx, sql string, args []any) ([]byte, error) {
	var row []byte
	err := tx.QueryRow(ctx, sql, args...).Scan(&row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return row, nil
}

func missing(op *rowOp) error {
	return &conflictError{msg: fmt.Sprintf("%s of %s: the row does not exist", op.m.Op, op.t.qualified())}
}
