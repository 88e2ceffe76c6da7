package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/where"
)

// This file holds the rules' subqueries (RulesOptions.Subqueries,
// docs/AUTH.md "Subqueries in rules"): checks of the accepted forms
// (`col IN (SELECT c FROM t WHERE …)`) in read rules, which make the
// shapes they narrow subquery shapes, and in write rules, which are then
// evaluated by Postgres inside the write's transaction; and the
// subqueries of requests decided by read rules, each narrowed by its own
// table's read rule.

// hasSubquery reports whether a clause contains a SELECT (a subquery).
func hasSubquery(clause string) bool {
	res, err := pg.Scan(clause)
	if err != nil {
		return false
	}
	for _, t := range res.Tokens {
		if t.Token == pg.Token_SELECT {
			return true
		}
	}
	return false
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// knownTables resolves subquery tables from the tables the rules know (an
// unqualified name is in public).
func (r *Rules) knownTables() where.Tables {
	return func(ref where.TableRef) (where.Table, error) {
		schema := ref.Schema
		if schema == "" {
			schema = "public"
		}
		t := r.known[schema+"."+ref.Name]
		if t == nil {
			return where.Table{}, fmt.Errorf("table %s.%s is not named by the rules", schema, ref.Name)
		}
		return whereTable(t, nil), nil
	}
}

// plan returns a check with subqueries parsed with the claims' values.
func (p *predicate) plan(claims Claims) (*where.Plan, error) {
	nulls, params, key, err := p.bind(claims)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	pl := p.plans[key]
	p.mu.Unlock()
	if pl != nil {
		return pl, nil
	}
	pl, err = where.ParsePlan(p.tmpl.render(nulls), p.cols, params, p.tables)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.plans) >= maxCachedExprs {
		p.plans = map[string]*where.Plan{}
	}
	p.plans[key] = pl
	p.mu.Unlock()
	return pl, nil
}

// validate checks that the claims' values fit the check.
func (p *predicate) validate(claims Claims) error {
	var err error
	if p.plans != nil {
		_, err = p.plan(claims)
	} else {
		_, err = p.expr(claims)
	}
	return err
}

// holdsIn evaluates a check with subqueries on row (a to_jsonb row) in
// Postgres, inside tx: the subqueries see the transaction's own writes.
// Only TRUE holds.
func (p *predicate) holdsIn(ctx context.Context, tx pgx.Tx, claims Claims, row map[string]any) (bool, error) {
	pl, err := p.plan(claims)
	if err != nil {
		return false, err
	}
	js, err := json.Marshal(row)
	if err != nil {
		return false, fmt.Errorf("encode row: %w", err)
	}
	sql := "SELECT coalesce((" + pl.SQL() + "), false) FROM jsonb_populate_record(NULL::" + p.ident + ", $1::jsonb) AS r"
	var ok bool
	if err := tx.QueryRow(ctx, sql, string(js)).Scan(&ok); err != nil {
		return false, &queryError{err: err}
	}
	return ok, nil
}

// queryError is a failure of the query that evaluates a check.
type queryError struct{ err error }

func (e *queryError) Error() string { return "evaluate the check: " + e.err.Error() }
func (e *queryError) Unwrap() error { return e.err }

// transientCheck reports a check that could not be evaluated for reasons
// that say nothing about the row (a lost connection, a deadlock, a
// restart): the mutation is then retried rather than refused. Any other
// failure (a check that no longer fits the table after DDL) refuses.
func transientCheck(err error) bool {
	var qe *queryError
	if !errors.As(err, &qe) {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "55", "57", "58", "XX":
		return true
	}
	return false
}

// readView is what a caller may read of one table: its read rule bound to
// the caller's claims.
type readView struct {
	key     string
	rule    *readRule // nil for volt.receipts
	allowed map[string]bool
	// clause renders the row predicate with its parameters numbered from
	// first ("" without one); params are their values.
	clause func(first int) string
	params []string
	cols   []where.Column // every column of the table
	wt     func(readable bool) where.Table
}

// view binds key's read rule ("schema.name") to claims: a 403 when there
// is none or the claims do not fit it.
func (p *ReadPolicy) view(claims Claims, key string) (*readView, error) {
	if key == receiptsTable {
		subject, ok := claims["sub"].(string)
		if claims == nil || !ok || subject == "" {
			return nil, forbiddenRead("%s is readable only with a token that has a sub claim (or with the API secret)", receiptsTable)
		}
		t := receiptsSchema()
		pattern := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(subject) + ":%"
		return &readView{
			key:    key,
			clause: func(n int) string { return fmt.Sprintf("client_id = $%d OR client_id LIKE $%d", n, n+1) },
			params: []string{subject, pattern},
			cols:   columnsOf(t),
			wt:     func(bool) where.Table { return whereTable(t, nil) },
		}, nil
	}
	var rule *readRule
	if p.Rules != nil {
		if t := p.Rules.tables[key]; t != nil {
			rule = t.read
		}
	}
	if rule == nil {
		return nil, forbiddenRead("table %s is not readable: it has no read rule", key)
	}
	v := &readView{key: key, rule: rule, allowed: rule.allowed, cols: columnsOf(rule.table)}
	v.wt = func(readable bool) where.Table {
		if readable {
			return whereTable(rule.table, rule.allowed)
		}
		return whereTable(rule.table, nil)
	}
	if rule.check == nil {
		return v, nil
	}
	nulls, params, _, err := rule.check.bind(claims)
	if err == nil {
		err = rule.check.validate(claims)
	}
	if err != nil {
		return nil, forbiddenRead("the read rule of %s does not accept this token's claims: %v", key, err)
	}
	v.clause = func(n int) string { return rule.check.tmpl.renderFrom(nulls, n) }
	for i := 1; i <= len(params); i++ {
		v.params = append(v.params, params[fmt.Sprint(i)])
	}
	return v, nil
}

// readTables resolves the tables of a request's subqueries to what the
// caller may read of them: a table without a read rule is refused (403),
// and with readable only the rule's columns are known.
func (p *ReadPolicy) readTables(claims Claims, readable bool) where.Tables {
	return func(ref where.TableRef) (where.Table, error) {
		schema := ref.Schema
		if schema == "" {
			schema = "public"
		}
		v, err := p.view(claims, schema+"."+ref.Name)
		if err != nil {
			return where.Table{}, err
		}
		return v.wt(readable), nil
	}
}

// subqueries reports whether requests may use subqueries (and rules do).
func (p *ReadPolicy) subqueries() bool { return p.Rules != nil && p.Rules.subqueries }

// parseRequestWhere parses a request's where clause, which may have
// subqueries on tables the caller may read, with their columns limited to
// the readable ones. A table without a read rule is a 403 naming it, a
// column that is not readable a 403 naming it and its table, anything
// else invalid a 400. The plan returned knows only the readable columns,
// which are all it uses.
func (p *ReadPolicy) parseRequestWhere(claims Claims, v *readView, clause string, params map[string]string) (*where.Plan, error) {
	readable := v.wt(true).Columns
	pl, err := where.ParsePlan(clause, readable, params, p.readTables(claims, true))
	if err != nil {
		var re *httpapi.ReadError
		if errors.As(err, &re) {
			return nil, re
		}
		full, ferr := where.ParsePlan(clause, v.cols, params, p.readTables(claims, false))
		if ferr != nil {
			return nil, badWhere(err)
		}
		if herr := p.hiddenColumn(claims, v, full); herr != nil {
			return nil, herr
		}
		return nil, badWhere(err)
	}
	return pl, nil
}

// hiddenColumn names a column of pl (of v's table) or of its subqueries
// that the caller may not read.
func (p *ReadPolicy) hiddenColumn(claims Claims, v *readView, pl *where.Plan) error {
	if v.allowed != nil {
		for _, c := range pl.Columns() {
			if !v.allowed[c] {
				return forbiddenRead("the where clause refers to column %q of %s, which is not readable", c, v.key)
			}
		}
	}
	for _, d := range pl.Deps {
		dv, err := p.view(claims, d.Schema+"."+d.Table)
		if err != nil {
			return err
		}
		cols := d.Columns
		if d.Plan != nil {
			cols = append(cols[:len(cols):len(cols)], d.Plan.Columns()...)
		}
		for _, c := range cols {
			if dv.allowed != nil && !dv.allowed[c] {
				return forbiddenRead("the where clause refers to column %q of %s, which is not readable", c, dv.key)
			}
		}
		if d.Plan != nil {
			if err := p.hiddenColumn(claims, dv, d.Plan); err != nil {
				return err
			}
		}
	}
	return nil
}

// narrowedSQL renders pl with each subquery's WHERE ANDed with its
// table's read rule (claims as parameters appended to params), at every
// level, so that a subquery yields only values of rows the caller could
// read. The clause is rendered in its disjunctive normal form (which
// Postgres and the plan evaluate alike): the plan's literals are what is
// exported; ordinary ones are rendered by the plan.
func (p *ReadPolicy) narrowedSQL(claims Claims, pl *where.Plan, params *[]string) (string, error) {
	var ors []string
	for _, dj := range pl.Disjuncts {
		var ands []string
		for _, q := range dj {
			pos := pl.Positions[q]
			if !pos.IsSubquery() {
				ands = append(ands, pl.ConditionSQL(q, nil))
				continue
			}
			sq, err := p.subquerySQL(claims, pl.Deps[pos.Dep], params)
			if err != nil {
				return "", err
			}
			cols := make([]string, len(pos.Columns))
			for i, c := range pos.Columns {
				cols[i] = quoteIdent(c)
			}
			lit := "(" + strings.Join(cols, ", ") + ") IN (" + sq + ")"
			if pos.Negated {
				lit = "NOT (" + lit + ")"
			}
			ands = append(ands, "("+lit+")")
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", nil
}

// subquerySQL renders a request's subquery narrowed by its table's rule.
func (p *ReadPolicy) subquerySQL(claims Claims, d *where.Dependency, params *[]string) (string, error) {
	v, err := p.view(claims, d.Schema+"."+d.Table)
	if err != nil {
		return "", err
	}
	cols := make([]string, len(d.Columns))
	for i, c := range d.Columns {
		cols[i] = quoteIdent(c)
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + quoteIdent(d.Schema) + "." + quoteIdent(d.Table)
	var conds []string
	if v.clause != nil {
		conds = append(conds, "("+v.clause(len(*params)+1)+"\n)")
		*params = append(*params, v.params...)
	}
	switch {
	case d.Plan != nil && len(d.Plan.Deps) > 0:
		inner, err := p.narrowedSQL(claims, d.Plan, params)
		if err != nil {
			return "", err
		}
		conds = append(conds, inner)
	case d.Where != "":
		conds = append(conds, "("+d.Where+")")
	}
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	return sql, nil
}

// badWhere is a 400 on the where parameter.
func badWhere(err error) error {
	return &httpapi.ReadError{Status: http.StatusBadRequest, Field: "where", Message: err.Error()}
}
