package auth

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/voltsync/volt/where"
)

// maxCachedExprs bounds a predicate's cache of parsed clauses (one per
// distinct set of claim values); it is emptied when full.
const maxCachedExprs = 1024

// predicate is a compiled row check. where.Parse inlines parameters, so
// the clause is parsed once per distinct set of claim values and cached.
type predicate struct {
	tmpl     *template
	cols     []where.Column
	document map[string]bool // json and jsonb columns

	// With subqueries (Rules.subqueries): tables resolves their tables,
	// ident is the quoted table name, and plans caches parsed clauses
	// (cache is then unused).
	tables where.Tables
	ident  string
	plans  map[string]*where.Plan

	mu    sync.Mutex
	cache map[string]*where.Expr
}

// holds evaluates the check on row (a to_jsonb row, numbers as
// json.Number). Only TRUE holds; NULL does not.
func (p *predicate) holds(claims Claims, row map[string]any) (bool, error) {
	e, err := p.expr(claims)
	if err != nil {
		return false, err
	}
	r, err := p.row(e, row)
	if err != nil {
		return false, err
	}
	return e.Matches(r)
}

// expr returns the clause parsed with the claims' values.
func (p *predicate) expr(claims Claims) (*where.Expr, error) {
	nulls, params, key, err := p.bind(claims)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	e := p.cache[key]
	p.mu.Unlock()
	if e != nil {
		return e, nil
	}
	e, err = where.Parse(p.tmpl.render(nulls), p.cols, params)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.cache) >= maxCachedExprs {
		p.cache = map[string]*where.Expr{}
	}
	p.cache[key] = e
	p.mu.Unlock()
	return e, nil
}

// bind looks up each referenced claim: a missing or null claim is NULL,
// any other value a parameter in Postgres text form. key identifies the
// binding for the cache.
func (p *predicate) bind(claims Claims) (nulls []bool, params map[string]string, key string, err error) {
	nulls = make([]bool, len(p.tmpl.refs))
	params = map[string]string{}
	var k strings.Builder
	for i, path := range p.tmpl.refs {
		text, ok, err := pgText(claims.lookup(path), false)
		if err != nil {
			return nil, nil, "", fmt.Errorf("claim %s: %w", strings.Join(path, "."), err)
		}
		if !ok {
			nulls[i] = true
			k.WriteString("N;")
			continue
		}
		params[strconv.Itoa(len(params)+1)] = text
		fmt.Fprintf(&k, "%d:%s;", len(text), text)
	}
	return nulls, params, k.String(), nil
}

// row gives the columns the expression reads in Postgres text form.
func (p *predicate) row(e *where.Expr, row map[string]any) (where.MapRow, error) {
	out := where.MapRow{}
	for _, name := range e.Columns() {
		text, ok, err := pgText(row[name], p.document[name])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", name, err)
		}
		if ok {
			out[name] = &text
		}
	}
	return out, nil
}
