package auth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

// ReadPolicy decides who may read which shapes (docs/AUTH.md, "Read
// rules"). It is an httpapi.ReadAuthorizer: a request's bearer token (a
// user JWT or a shape token) is verified, the table's read rule must
// exist, requested columns must be readable, and the rule's row predicate,
// with the claims as parameters, is ANDed into the shape's where clause.
type ReadPolicy struct {
	// Verifier checks user JWTs. Without it requests are anonymous (every
	// claim NULL) and an Authorization header is refused.
	Verifier *Verifier
	// Rules holds the read rules; nil makes no table readable.
	Rules *Rules
	// Tokens, when set, lets requests present shape tokens (ShapeTokens).
	Tokens *ShapeTokens
}

// receiptsTable is the write endpoint's receipts table, readable by the
// built-in rule (receiptsRule).
const receiptsTable = "volt.receipts"

// AuthorizeRead implements httpapi.ReadAuthorizer.
func (p *ReadPolicy) AuthorizeRead(r *http.Request, req *httpapi.ReadRequest) error {
	claims, bound, err := p.principal(r)
	if err != nil {
		return err
	}
	if bound != nil {
		if err := bound.matches(req); err != nil {
			return err
		}
	}
	req.Private = claims != nil
	if req.Def.Table == "" {
		return nil // no table or a malformed one: answered with a 400
	}
	return p.authorize(claims, req.Def, req.Subset)
}

// principal verifies the request's credentials: a shape token (bound is
// its shape), a user JWT, or none (anonymous, only without a Verifier).
func (p *ReadPolicy) principal(r *http.Request) (claims Claims, bound *boundShape, err error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if p.Verifier != nil {
			return nil, nil, unauthorizedRead("missing Authorization: Bearer token")
		}
		return nil, nil, nil
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return nil, nil, unauthorizedRead(`the Authorization header must be "Bearer <token>"`)
	}
	if isShapeToken(token) {
		if p.Tokens == nil {
			return nil, nil, unauthorizedRead("shape tokens are not accepted by this server")
		}
		b, err := p.Tokens.verify(token)
		if err != nil {
			return nil, nil, unauthorizedRead("%s", err.Error())
		}
		return b.claims, b, nil
	}
	if p.Verifier == nil {
		return nil, nil, unauthorizedRead("bearer tokens are not accepted: no JWT key is configured")
	}
	c, err := p.Verifier.Verify(token)
	if err != nil {
		return nil, nil, unauthorizedRead("%s", strings.TrimPrefix(err.Error(), "unauthorized: "))
	}
	if c == nil {
		c = Claims{}
	}
	return c, nil, nil
}

// authorize applies the table's read rule to def (Schema and Table set)
// for claims (nil: anonymous).
func (p *ReadPolicy) authorize(claims Claims, def *shape.Definition, sub *httpapi.SubsetRequest) error {
	v, err := p.view(claims, def.Schema+"."+def.Table)
	if err != nil {
		return err
	}
	if v.rule != nil {
		// With subqueries, the where clause is checked by narrow, which
		// knows the subqueries' tables.
		if err := v.rule.checkColumns(def, sub, p.subqueries()); err != nil {
			return err
		}
	}
	return p.narrow(claims, v, def)
}

// checkColumns defaults the projection to the readable columns and refuses
// any other column: in columns, queryable_columns, and in the where, subset
// where and order_by clauses, which could otherwise reveal hidden values.
// The rule's list is the allow-list: a column it does not name is refused
// even when the rules do not know it (a column added since volt started).
func (rr *readRule) checkColumns(def *shape.Definition, sub *httpapi.SubsetRequest, skipWhere bool) error {
	if rr.allowed == nil {
		return nil
	}
	name := rr.table.Schema + "." + rr.table.Name
	if def.Columns == nil && def.Queryable == nil {
		def.Columns = slices.Clone(rr.columns)
	}
	for _, list := range [][]string{def.Columns, def.Queryable} {
		for _, c := range list {
			if !rr.allowed[c] {
				return forbiddenRead("column %q of %s is not readable", c, name)
			}
		}
	}
	all := columnsOf(rr.table)
	readable := slices.DeleteFunc(slices.Clone(all), func(c where.Column) bool { return !rr.allowed[c.Name] })
	clauses := []struct {
		field, name, clause string
		params              map[string]string
	}{{"where", "where", def.Where, def.Params}}
	if skipWhere {
		clauses = clauses[:0]
	}
	if sub != nil {
		clauses = append(clauses, struct {
			field, name, clause string
			params              map[string]string
		}{"subset", "subset where", sub.Where, sub.Params})
	}
	for _, c := range clauses {
		if c.clause == "" {
			continue
		}
		_, err := where.Parse(c.clause, readable, c.params)
		if err == nil {
			continue
		}
		if e, ferr := where.Parse(c.clause, all, c.params); ferr == nil {
			for _, col := range e.Columns() {
				if !rr.allowed[col] {
					return forbiddenRead("the %s clause refers to column %q of %s, which is not readable", c.name, col, name)
				}
			}
		}
		// Invalid, or it names a column the rule does not list.
		return &httpapi.ReadError{Status: http.StatusBadRequest, Field: c.field, Message: err.Error()}
	}
	if sub != nil && sub.OrderBy != "" {
		full, err := shape.New(shape.Definition{Schema: rr.table.Schema, Table: rr.table.Name}, rr.table)
		if err != nil {
			return forbiddenRead("the read rule of %s cannot check order_by: %v", name, err)
		}
		if _, err := full.ParseOrderBy(sub.OrderBy, rr.columns); err != nil {
			if _, ferr := full.ParseOrderBy(sub.OrderBy, nil); ferr == nil {
				return forbiddenRead("the subset order_by refers to a column of %s that is not readable", name)
			}
			return &httpapi.ReadError{Status: http.StatusBadRequest, Field: "subset", Message: "order_by: " + err.Error()}
		}
	}
	return nil
}

// narrow ANDs the rule's predicate (v's clause, with the claims as $1…$n)
// into def. The user's where clause is parsed on its own first and
// included as the SQL of its parse tree, parenthesised: nothing the user
// wrote (an unbalanced parenthesis, "OR true", a comment) can reach the
// rule's side of the AND. The claims' values stay parameters of the
// definition, so each set of claims has its own shape (and handle). With
// subqueries, each subquery of the user's clause is narrowed by its own
// table's rule (narrowedSQL). Without a predicate or subqueries, def is
// left as requested.
func (p *ReadPolicy) narrow(claims Claims, v *readView, def *shape.Definition) error {
	var parts, params []string
	if v.clause != nil {
		parts = append(parts, "("+v.clause(1)+"\n)")
		params = append(params, v.params...)
	}
	narrowed := false
	if def.Where != "" {
		var user string
		var pl *where.Plan
		var err error
		if p.subqueries() {
			if pl, err = p.parseRequestWhere(claims, v, def.Where, def.Params); err != nil {
				return err
			}
		}
		if pl != nil && len(pl.Deps) > 0 {
			if user, err = p.narrowedSQL(claims, pl, &params); err != nil {
				return err
			}
			narrowed = true
		} else {
			e, err := where.Parse(def.Where, v.cols, def.Params)
			if err != nil {
				return badWhere(err)
			}
			user = e.SQL()
		}
		parts = append(parts, "("+user+")")
	}
	if v.clause == nil && !narrowed {
		return nil
	}
	combined := strings.Join(parts, " AND ")
	m := map[string]string{}
	for i, val := range params {
		m[strconv.Itoa(i+1)] = val
	}
	var err error
	if p.subqueries() {
		_, err = where.ParsePlan(combined, v.cols, m, p.knownTables())
	} else {
		_, err = where.Parse(combined, v.cols, m)
	}
	if err != nil {
		return forbiddenRead("the where clause cannot be combined with the read rule of %s: %v", v.key, err)
	}
	def.Where, def.Params = combined, m
	if len(m) == 0 {
		def.Params = nil
	}
	return nil
}

// knownTables resolves the tables of a narrowed clause's subqueries: those
// the rules know, and volt.receipts.
func (p *ReadPolicy) knownTables() where.Tables {
	known := p.Rules.knownTables()
	return func(ref where.TableRef) (where.Table, error) {
		if ref.Schema == "volt" && ref.Name == "receipts" {
			return whereTable(receiptsSchema(), nil), nil
		}
		return known(ref)
	}
}

// receiptsSchema describes volt.receipts for parsing where clauses on it
// (mutations/migrate.go); only names and types matter here.
func receiptsSchema() *volt.Table {
	cols := []struct{ name, typ string }{
		{"client_id", "text"}, {"seq", "int8"}, {"status", "text"}, {"code", "text"}, {"message", "text"},
		{"txid", "int8"}, {"xid8", "text"}, {"lsn", "text"}, {"detail", "jsonb"}, {"created_at", "timestamptz"},
	}
	t := &volt.Table{Schema: "volt", Name: "receipts", PrimaryKey: []string{"client_id", "seq"}}
	for _, c := range cols {
		t.Columns = append(t.Columns, volt.Column{Name: c.name, TypeName: c.typ})
	}
	return t
}

func columnsOf(t *volt.Table) []where.Column {
	cols := make([]where.Column, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = where.Column{Name: c.Name, Type: c.TypeName, Dims: c.Dims, IsEnum: c.IsEnum}
	}
	return cols
}

func unauthorizedRead(format string, args ...any) error {
	return &httpapi.ReadError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "unauthorized: " + fmt.Sprintf(format, args...)}
}

func forbiddenRead(format string, args ...any) error {
	return &httpapi.ReadError{Status: http.StatusForbidden, Code: "forbidden", Message: fmt.Sprintf(format, args...)}
}

// readError returns err as a *httpapi.ReadError (a 403 when it is not one).
func readError(err error) *httpapi.ReadError {
	var re *httpapi.ReadError
	if errors.As(err, &re) {
		return re
	}
	return &httpapi.ReadError{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()}
}
