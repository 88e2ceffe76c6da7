package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

// ErrTableNotFound is returned by Inspector.Table for a missing table.
var ErrTableNotFound = errors.New("table does not exist")

// Inspector reads table definitions from the catalog.
type Inspector struct {
	Pool *pgxpool.Pool
}

const tableQuery = `
SELECT c.oid, n.nspname, c.relname,
       a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.attndims, a.attgenerated <> '',
       coalesce(et.typname, t.typname), coalesce(et.typtype, t.typtype) = 'e', et.oid IS NOT NULL,
       coalesce((SELECT k.n - 1 FROM unnest(pk.indkey) WITH ORDINALITY k(attnum, n) WHERE k.attnum = a.attnum), -1)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON t.typcategory = 'A' AND et.oid = t.typelem
LEFT JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
ORDER BY a.attnum`

// Table returns the definition of schema.name, or ErrTableNotFound (also for
// tables without columns, as Electric does).
func (i *Inspector) Table(ctx context.Context, schema, name string) (*volt.Table, error) {
	rows, err := i.Pool.Query(ctx, tableQuery, schema, name)
	if err != nil {
		return nil, fmt.Errorf("inspect %s.%s: %w", schema, name, err)
	}
	defer rows.Close()
	t := &volt.Table{}
	pk := map[int]string{}
	for rows.Next() {
		var c volt.Column
		var isArray bool
		var dims int32
		var pkIndex int32
		if err := rows.Scan(&t.OID, &t.Schema, &t.Name, &c.Name, &c.TypeOID, &c.TypeMod, &c.NotNull, &dims,
			&c.Generated, &c.TypeName, &c.IsEnum, &isArray, &pkIndex); err != nil {
			return nil, fmt.Errorf("inspect %s.%s: %w", schema, name, err)
		}
		c.Dims, c.PKIndex = int(dims), int(pkIndex)
		if isArray && c.Dims == 0 {
			c.Dims = 1
		}
		if c.PKIndex >= 0 {
			pk[c.PKIndex] = c.Name
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect %s.%s: %w", schema, name, err)
	}
	if len(t.Columns) == 0 {
		return nil, ErrTableNotFound
	}
	for k := 0; k < len(pk); k++ {
		t.PrimaryKey = append(t.PrimaryKey, pk[k])
	}
	return t, nil
}

// QuoteIdent quotes a Postgres identifier.
func QuoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }
