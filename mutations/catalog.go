package mutations

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// catalogTTL bounds how long a cached table definition or FK graph is
// trusted; errors that a stale definition explains also drop the cache.
const catalogTTL = 10 * time.Second

// querier is what catalog reads need: a pgx.Tx or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// column is one writable column and the cast its values get.
type column struct {
	name      string
	cast      string // the type without modifier, as Postgres spells it (format of regtype)
	jsonType  bool   // json: compared through jsonb (json has no equality)
	document  bool   // json or jsonb: objects and arrays are documents
	array     bool
	pkIndex   int // position in the primary key, -1 when not part of it
	generated bool
}

// table is a table's definition as the write path needs it.
type table struct {
	schema, name string
	ident        string // "schema"."name", quoted
	cols         map[string]*column
	pk           []*column
	loaded       time.Time
}

func (t *table) qualified() string { return t.schema + "." + t.name }

// fkEdge is a foreign key from child to parent (qualified names).
type fkEdge struct {
	child, parent string
	deferrable    bool
}

// catalog caches table definitions and the FK graph.
type catalog struct {
	mu       sync.Mutex
	tables   map[[2]string]*table
	fks      []fkEdge
	fkLoaded time.Time

	deferrableAny    bool // some constraint or trigger is deferrable
	deferrableLoaded time.Time
}

func newCatalog() *catalog { return &catalog{tables: map[[2]string]*table{}} }

// invalidate forgets everything (after DDL showed through an error).
func (c *catalog) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tables = map[[2]string]*table{}
	c.fkLoaded = time.Time{}
	c.deferrableLoaded = time.Time{}
}

// deferrable reports whether the database has a deferrable constraint or
// constraint trigger (foreign key, unique, exclusion, CREATE CONSTRAINT
// TRIGGER): without one, SET CONSTRAINTS changes nothing, and a batch
// leaves it out. A deferrable constraint created while the answer is
// cached is checked at the batch's COMMIT when initially deferred (a
// failing COMMIT applies each client transaction alone, so the guilty one
// is rejected), at its statement's end otherwise.
func (c *catalog) deferrable(ctx context.Context, q querier) (bool, error) {
	c.mu.Lock()
	if time.Since(c.deferrableLoaded) < catalogTTL {
		defer c.mu.Unlock()
		return c.deferrableAny, nil
	}
	c.mu.Unlock()
	rows, err := q.Query(ctx, `SELECT EXISTS (SELECT FROM pg_trigger WHERE tgdeferrable)`)
	if err != nil {
		return true, fmt.Errorf("read deferrable constraints: %w", err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil {
		return true, fmt.Errorf("read deferrable constraints: %w", err)
	}
	c.mu.Lock()
	c.deferrableAny, c.deferrableLoaded = d, time.Now()
	c.mu.Unlock()
	return d, nil
}

// table returns schema.name, reloading when the cached definition is old or
// lacks one of cols. It returns nil when the table does not exist.
func (c *catalog) table(ctx context.Context, q querier, schema, name string, cols []string) (*table, error) {
	c.mu.Lock()
	t := c.tables[[2]string{schema, name}]
	c.mu.Unlock()
	if t != nil && time.Since(t.loaded) < catalogTTL && t.hasAll(cols) {
		return t, nil
	}
	t, err := loadTable(ctx, q, schema, name)
	if err != nil || t == nil {
		return nil, err
	}
	c.mu.Lock()
	c.tables[[2]string{schema, name}] = t
	c.mu.Unlock()
	return t, nil
}

func (t *table) hasAll(cols []string) bool {
	for _, n := range cols {
		if t.cols[n] == nil {
			return false
		}
	}
	return true
}

const tableSQL = `
SELECT a.attname, a.atttypid::regtype::text, t.typname, t.typcategory = 'A', a.attgenerated <> '',
       coalesce((SELECT k.n - 1 FROM unnest(pk.indkey) WITH ORDINALITY k(attnum, n) WHERE k.attnum = a.attnum), -1)::int4
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
ORDER BY a.attnum`

func loadTable(ctx context.Context, q querier, schema, name string) (*table, error) {
	rows, err := q.Query(ctx, tableSQL, schema, name)
	if err != nil {
		return nil, fmt.Errorf("read table %s.%s: %w", schema, name, err)
	}
	defer rows.Close()
	t := &table{schema: schema, name: name, ident: pgx.Identifier{schema, name}.Sanitize(), cols: map[string]*column{}, loaded: time.Now()}
	pk := map[int]*column{}
	for rows.Next() {
		c := &column{}
		var typname string
		var pkIndex int32
		if err := rows.Scan(&c.name, &c.cast, &typname, &c.array, &c.generated, &pkIndex); err != nil {
			return nil, fmt.Errorf("read table %s.%s: %w", schema, name, err)
		}
		c.pkIndex = int(pkIndex)
		c.jsonType = typname == "json"
		c.document = c.jsonType || typname == "jsonb"
		t.cols[c.name] = c
		if c.pkIndex >= 0 {
			pk[c.pkIndex] = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read table %s.%s: %w", schema, name, err)
	}
	if len(t.cols) == 0 {
		return nil, nil
	}
	for i := 0; i < len(pk); i++ {
		t.pk = append(t.pk, pk[i])
	}
	return t, nil
}

const fkSQL = `
SELECT cn.nspname || '.' || c.relname, pn.nspname || '.' || p.relname, con.condeferrable
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE con.contype = 'f' AND con.conparentid = 0`

// foreignKeys returns the database's FK graph.
func (c *catalog) foreignKeys(ctx context.Context, q querier) ([]fkEdge, error) {
	c.mu.Lock()
	if time.Since(c.fkLoaded) < catalogTTL {
		defer c.mu.Unlock()
		return c.fks, nil
	}
	c.mu.Unlock()
	rows, err := q.Query(ctx, fkSQL)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	defer rows.Close()
	var fks []fkEdge
	for rows.Next() {
		var e fkEdge
		if err := rows.Scan(&e.child, &e.parent, &e.deferrable); err != nil {
			return nil, fmt.Errorf("read foreign keys: %w", err)
		}
		fks = append(fks, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	c.mu.Lock()
	c.fks, c.fkLoaded = fks, time.Now()
	c.mu.Unlock()
	return fks, nil
}
