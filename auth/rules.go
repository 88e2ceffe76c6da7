package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

// TableSource reads table definitions from the catalog; *postgres.Inspector
// is one. It returns postgres.ErrTableNotFound for a missing table.
type TableSource interface {
	Table(ctx context.Context, schema, name string) (*volt.Table, error)
}

// Rules are compiled declarative rules: per table, the allowed operations,
// the writable columns and a row check; and the allowed named mutations.
// They are immutable and safe for concurrent use.
type Rules struct {
	tables    map[string]*tableRule // by "schema.name"
	mutations map[string]bool
	// subqueries is RulesOptions.Subqueries: checks, and requests decided
	// by read rules, may use subqueries.
	subqueries bool
	// known are the tables the rules name, as the catalog described them
	// at start: the rules' own tables and their subqueries' tables.
	known map[string]*volt.Table
}

// RulesOptions configure how a rules file is compiled.
type RulesOptions struct {
	// Subqueries lets checks use subqueries (`col IN (SELECT c FROM t
	// WHERE …)`), and requests decided by read rules use them on tables
	// the caller may read. It is volt's -subqueries (on by default): without
	// it a check with a subquery is an error.
	Subqueries bool
}

// tableRule is a table's compiled write rule.
type tableRule struct {
	table   string // "schema.name"
	ops     map[string]bool
	columns map[string]bool // nil: every column
	check   *predicate      // nil: no row check
	read    *readRule       // nil: not readable (without the secret)
}

// readRule is a table's compiled read rule.
type readRule struct {
	table   *volt.Table     // as the catalog described it at start
	columns []string        // readable columns in table order; nil: every column
	allowed map[string]bool // the same as a set; nil: every column
	check   *predicate      // nil: every row
}

// LoadRules reads and compiles the rules file at path. Its errors are one
// sentence naming the file and the offending key.
func LoadRules(ctx context.Context, src TableSource, path string) (*Rules, error) {
	return LoadRulesWith(ctx, src, path, RulesOptions{})
}

// LoadRulesWith is LoadRules with options.
func LoadRulesWith(ctx context.Context, src TableSource, path string, opts RulesOptions) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	r, err := CompileRulesWith(ctx, src, data, opts)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	return r, nil
}

// CompileRules parses a rules file (docs/AUTH.md) and checks it against the
// catalog: tables and columns must exist and every check must type-check.
func CompileRules(ctx context.Context, src TableSource, data []byte) (*Rules, error) {
	return CompileRulesWith(ctx, src, data, RulesOptions{})
}

// CompileRulesWith is CompileRules with options.
func CompileRulesWith(ctx context.Context, src TableSource, data []byte, opts RulesOptions) (*Rules, error) {
	f, err := parseRuleFile(data)
	if err != nil {
		return nil, err
	}
	r := &Rules{tables: map[string]*tableRule{}, mutations: map[string]bool{}, subqueries: opts.Subqueries, known: map[string]*volt.Table{}}
	c := &compiler{ctx: ctx, src: src, rules: r}
	for _, e := range f.tables {
		tr, err := c.table(e)
		if err != nil {
			return nil, err
		}
		if _, dup := r.tables[tr.table]; dup {
			return nil, fmt.Errorf("tables.%s: table %s has two entries", e.key, tr.table)
		}
		r.tables[tr.table] = tr
	}
	for _, name := range f.mutations {
		r.mutations[name] = true
	}
	return r, nil
}

// UsesClaims reports whether a check refers to $claims (and so needs
// authenticated requests to ever pass).
func (r *Rules) UsesClaims() bool {
	for _, t := range r.tables {
		if t.check != nil && len(t.check.tmpl.refs) > 0 {
			return true
		}
		if t.read != nil && t.read.check != nil && len(t.read.check.tmpl.refs) > 0 {
			return true
		}
	}
	return false
}

// MutationAllowed reports whether the named mutation is in the allow-list.
func (r *Rules) MutationAllowed(name string) bool { return r.mutations[name] }

// compiler compiles a rules file's entries against the catalog.
type compiler struct {
	ctx   context.Context
	src   TableSource
	rules *Rules
}

// lookup reads a table from the catalog (once) and records it as known.
func (c *compiler) lookup(schema, name string) (*volt.Table, error) {
	if t := c.rules.known[schema+"."+name]; t != nil {
		return t, nil
	}
	t, err := c.src.Table(c.ctx, schema, name)
	if err != nil {
		return nil, err
	}
	c.rules.known[schema+"."+name] = t
	return t, nil
}

func (c *compiler) table(e tableEntry) (*tableRule, error) {
	path := "tables." + e.key
	schema, name, err := shape.ParseRelation(e.key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if schema == "volt" {
		return nil, fmt.Errorf("%s: schema volt is volt's own and cannot have rules (volt.receipts has a built-in read rule)", path)
	}
	t, err := c.lookup(schema, name)
	if errors.Is(err, postgres.ErrTableNotFound) {
		return nil, fmt.Errorf("%s: table %s.%s does not exist", path, schema, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tr := &tableRule{table: schema + "." + name, ops: map[string]bool{}}
	if e.read != nil {
		if tr.read, err = c.read(t, e.read, path+".read"); err != nil {
			return nil, err
		}
	}
	if e.write == nil {
		return tr, nil // listed, not writable
	}
	for _, op := range e.write.operations {
		tr.ops[op] = true
	}
	if tr.columns, err = writableColumns(t, e.write.columns, path+".write.columns"); err != nil {
		return nil, err
	}
	if e.write.check != "" {
		if tr.check, err = c.check(t, e.write.check); err != nil {
			return nil, fmt.Errorf("%s.write.check: %w", path, err)
		}
	}
	return tr, nil
}

// compileRead checks a read rule's columns (which must include the row
// identity, as a shape's columns must) and check.
func (c *compiler) read(t *volt.Table, e *readEntry, path string) (*readRule, error) {
	rr := &readRule{table: t}
	if e.columns != nil {
		rr.allowed = map[string]bool{}
		for _, n := range e.columns {
			c, ok := t.Column(n)
			if !ok {
				return nil, fmt.Errorf("%s.columns: table %s.%s has no column %q", path, t.Schema, t.Name, n)
			}
			if c.Generated {
				return nil, fmt.Errorf("%s.columns: column %q is generated and cannot be synced", path, n)
			}
			rr.allowed[n] = true
		}
		for _, k := range t.PrimaryKey {
			if !rr.allowed[k] {
				return nil, fmt.Errorf("%s.columns: the primary key column %q must be readable (shapes identify rows by it)", path, k)
			}
		}
		if len(t.PrimaryKey) == 0 && len(rr.allowed) != len(t.Columns) {
			return nil, fmt.Errorf("%s.columns: table %s.%s has no primary key, so its rows are identified by every column and all must be readable", path, t.Schema, t.Name)
		}
		for _, c := range t.Columns {
			if rr.allowed[c.Name] {
				rr.columns = append(rr.columns, c.Name)
			}
		}
	}
	if e.check != "" {
		var err error
		if rr.check, err = c.check(t, e.check); err != nil {
			return nil, fmt.Errorf("%s.check: %w", path, err)
		}
	}
	return rr, nil
}

// writableColumns checks the listed columns; nil (not listed) means every
// column.
func writableColumns(t *volt.Table, names []string, path string) (map[string]bool, error) {
	if names == nil {
		return nil, nil
	}
	cols := map[string]bool{}
	for _, n := range names {
		c, ok := t.Column(n)
		if !ok {
			return nil, fmt.Errorf("%s: table %s.%s has no column %q", path, t.Schema, t.Name, n)
		}
		if c.Generated {
			return nil, fmt.Errorf("%s: column %q is generated and cannot be written", path, n)
		}
		cols[n] = true
	}
	return cols, nil
}

// check type-checks a check with every claim as NULL, which types like a
// parameter (an unknown-typed constant), so the runtime parse with the
// claims' values differs only in the values. A check with subqueries
// needs RulesOptions.Subqueries; their tables must exist and the
// subqueries be of the accepted forms (where.ParsePlan).
func (c *compiler) check(t *volt.Table, clause string) (*predicate, error) {
	tmpl, err := parseTemplate(clause)
	if err != nil {
		return nil, err
	}
	p := &predicate{tmpl: tmpl, document: map[string]bool{}, cache: map[string]*where.Expr{}}
	for _, col := range t.Columns {
		p.cols = append(p.cols, where.Column{Name: col.Name, Type: col.TypeName, Dims: col.Dims, IsEnum: col.IsEnum})
		if col.Dims == 0 && (col.TypeName == "json" || col.TypeName == "jsonb") {
			p.document[col.Name] = true
		}
	}
	nulls := slices.Repeat([]bool{true}, len(tmpl.refs))
	text := tmpl.render(nulls)
	_, err = where.Parse(text, p.cols, nil)
	if err == nil || !hasSubquery(text) {
		return p, err
	}
	if !c.rules.subqueries {
		return nil, errors.New("subqueries in rules need subquery shapes, which this server has turned off: start volt without -subqueries=false (VOLT_SUBQUERIES)")
	}
	p.ident = quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
	p.tables = c.rules.knownTables()
	p.plans = map[string]*where.Plan{}
	if _, err := where.ParsePlan(text, p.cols, nil, c.catalogTables()); err != nil {
		return nil, err
	}
	return p, nil
}

// catalogTables resolves the tables of the rules' subqueries when they
// are compiled (an unqualified name is in public, as for shapes), and
// later from the tables known then.
func (c *compiler) catalogTables() where.Tables {
	return func(ref where.TableRef) (where.Table, error) {
		schema := ref.Schema
		if schema == "" {
			schema = "public"
		}
		t, err := c.lookup(schema, ref.Name)
		if errors.Is(err, postgres.ErrTableNotFound) {
			return where.Table{}, fmt.Errorf("table %s.%s does not exist", schema, ref.Name)
		}
		if err != nil {
			return where.Table{}, err
		}
		return whereTable(t, nil), nil
	}
}

// whereTable describes t for where.ParsePlan: every column, or those
// allowed (nil: every column).
func whereTable(t *volt.Table, allowed map[string]bool) where.Table {
	wt := where.Table{Schema: t.Schema, Name: t.Name}
	for _, c := range columnsOf(t) {
		if allowed == nil || allowed[c.Name] {
			wt.Columns = append(wt.Columns, c)
		}
	}
	return wt
}
