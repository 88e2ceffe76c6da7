package where

import (
	"fmt"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file parses and validates where clauses with subqueries
// (`col IN (SELECT c FROM t WHERE …)`, Electric's relational shapes) into
// a Plan: the distinct subqueries become dependencies, and the boolean
// structure around them is kept for the DNF (dnf.go), row metadata
// (tags.go) and SQL rendering (subquery_sql.go).

// TableRef names a table as a subquery's FROM writes it; Schema is empty
// when the name is unqualified.
type TableRef struct {
	Schema string
	Name   string
}

func (r TableRef) String() string {
	if r.Schema == "" {
		return quoteIdent(r.Name)
	}
	return quoteIdent(r.Schema) + "." + quoteIdent(r.Name)
}

// Table is a table resolved by a Tables lookup.
type Table struct {
	Schema  string
	Name    string
	Columns []Column
}

// Tables resolves a table named in a subquery's FROM (an unqualified name
// as the caller's search path would). Its error is returned inside a
// *TableError.
type Tables func(ref TableRef) (Table, error)

// TableError is returned by ParsePlan when a subquery names a table that
// the lookup cannot resolve. Electric reports it under the request's
// "table" field rather than "where".
type TableError struct {
	Ref TableRef
	Err error
}

func (e *TableError) Error() string {
	return fmt.Sprintf("table %s in subquery: %v", e.Ref, e.Err)
}

func (e *TableError) Unwrap() error { return e.Err }

// Dependency is one distinct subquery of a clause: an ordinary shape on
// its table whose where is the subquery's WHERE and whose columns are the
// subquery's select list.
type Dependency struct {
	Schema  string
	Table   string
	Columns []string // the select list, in order
	Types   []Type   // their types (equal to the outer columns' types)
	// Where is the subquery's WHERE as normalised SQL with parameters
	// inlined as typed literals (and nested subqueries in canonical
	// form); empty when the subquery has no WHERE.
	Where string
	// Plan is the plan of the subquery's WHERE (its own dependencies are
	// nested subqueries); nil when the subquery has no WHERE.
	Plan *Plan
}

// key identifies a dependency: two subqueries with the same key are one.
func (d *Dependency) key() string {
	return d.SQL()
}

// SQL renders the dependency's canonical query:
// SELECT "c1", … FROM "schema"."table" [WHERE …].
func (d *Dependency) SQL() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range d.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c))
	}
	b.WriteString(" FROM " + quoteIdent(d.Schema) + "." + quoteIdent(d.Table))
	if d.Where != "" {
		b.WriteString(" WHERE " + d.Where)
	}
	return b.String()
}

// ValueOf returns the value an inner row yields: its select-list columns'
// text, nil for NULL.
func (d *Dependency) ValueOf(r Row) Value {
	v := make(Value, len(d.Columns))
	for i, c := range d.Columns {
		if s, ok := r.Value(c); ok {
			v[i] = &s
		}
	}
	return v
}

// boolTree is the boolean structure of a clause with subqueries: AND, OR
// and NOT over literals.
type boolTree struct {
	op   boolOp
	args []*boolTree
	lit  *literal // op == opLit
}

type boolOp uint8

const (
	opLit boolOp = iota
	opAnd
	opOr
	opNot
)

// literal is a leaf of the tree: a subquery test (dep >= 0) or an ordinary
// boolean expression.
type literal struct {
	dep  int      // dependency index, -1 for an ordinary literal
	cols []Column // the left side of IN (outer columns), for dep >= 0
	expr node     // the ordinary expression, for dep < 0
}

// maxPlanDepth bounds the nesting of AND/OR/NOT and of subqueries.
const maxPlanDepth = 200

// planner compiles one level of a clause (the outer where, or one
// subquery's WHERE) into a Plan.
type planner struct {
	tr     *transformer
	params map[string]string
	tables Tables
	depth  *int
	deps   []*Dependency
	byKey  map[string]int
	neg    map[int]bool // polarity of each dependency seen so far
}

// ParsePlan parses a where clause that may contain subqueries, as Parse
// does for ordinary clauses: cols are the outer table's columns, params
// the $n values (keys "1".."N", one numbering shared by the subqueries),
// and tables resolves the tables the subqueries name. Every subquery must
// be `col IN (SELECT c FROM t [WHERE …])` or the row comparison
// `(a, b) IN (SELECT x, y FROM t …)`, possibly negated, and used only as
// an operand of AND, OR and NOT; the subquery's WHERE is checked against
// its table like an ordinary clause and may itself contain subqueries.
// Errors are *Error, or *TableError for a table the lookup refuses.
func ParsePlan(clause string, cols []Column, params map[string]string, tables Tables) (*Plan, error) {
	if err := checkParams(params); err != nil {
		return nil, err
	}
	where, err := parseWhere(clause)
	if err != nil {
		return nil, err
	}
	depth := 0
	return newPlan(where, cols, params, tables, &depth)
}

// checkParams requires parameter keys 1..N without gaps.
func checkParams(params map[string]string) error {
	for k := range params {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 || n > len(params) || strconv.Itoa(n) != k {
			return errorf("Parameters must be numbered sequentially, starting from 1")
		}
	}
	return nil
}

// newPlan compiles where against cols into a Plan (tree, dependencies
// and DNF).
func newPlan(where *pg.Node, cols []Column, params map[string]string, tables Tables, depth *int) (*Plan, error) {
	p := &planner{
		tr:     &transformer{cols: map[string]Column{}, params: params},
		params: params,
		tables: tables,
		depth:  depth,
		byKey:  map[string]int{},
		neg:    map[int]bool{},
	}
	for _, c := range cols {
		p.tr.cols[c.Name] = c
	}
	root, err := p.tree(where, "", false)
	if err != nil {
		return nil, err
	}
	return buildPlan(root, p.deps)
}

// tree compiles a boolean expression. what names the enclosing operator
// ("" at the top); neg is whether an odd number of NOTs encloses it.
func (p *planner) tree(n *pg.Node, what string, neg bool) (*boolTree, error) {
	*p.depth++
	defer func() { *p.depth-- }()
	if *p.depth > maxPlanDepth {
		return nil, errorf("expression is too deeply nested")
	}
	switch x := n.Node.(type) {
	case *pg.Node_BoolExpr:
		b := x.BoolExpr
		t := &boolTree{op: opAnd}
		switch b.Boolop {
		case pg.BoolExprType_OR_EXPR:
			t.op = opOr
		case pg.BoolExprType_NOT_EXPR:
			t.op = opNot
		}
		op := strings.TrimSuffix(b.Boolop.String(), "_EXPR")
		for _, a := range b.Args {
			c, err := p.tree(a, op, neg != (t.op == opNot))
			if err != nil {
				return nil, err
			}
			t.args = append(t.args, c)
		}
		return t, nil
	case *pg.Node_SubLink:
		return p.subquery(x.SubLink, neg)
	}
	if s := findSubLink(n.ProtoReflect()); s != nil {
		if s.SubLinkType != pg.SubLinkType_ANY_SUBLINK || len(s.OperName) != 0 {
			return nil, errAt(s.Location, "only `value IN (SELECT ...)` subqueries are supported")
		}
		return nil, errAt(s.Location, "a subquery can only be an operand of AND, OR and NOT, not a value inside an expression")
	}
	e, err := p.ordinary(n, what)
	if err != nil {
		return nil, err
	}
	return &boolTree{op: opLit, lit: &literal{dep: -1, expr: e}}, nil
}

// ordinary type-checks a literal without subqueries, as Parse does.
func (p *planner) ordinary(n *pg.Node, what string) (node, error) {
	var e node
	var err error
	if what != "" {
		e, err = p.tr.boolArg(n, what)
	} else if e, err = p.tr.expr(n); err == nil {
		if c, ok := e.(*constNode); ok && c.t.isUnknown() {
			e, err = p.tr.coerce(e, tBool, c.loc)
		}
		if err == nil && e.typ() != tBool {
			err = errorf("WHERE clause must return a boolean")
		}
	}
	if err != nil {
		return nil, err
	}
	if err := firstConstError(e); err != nil {
		return nil, err
	}
	return e, nil
}

// findSubLink returns the first SubLink in a parse tree, or nil.
func findSubLink(m protoreflect.Message) *pg.SubLink {
	if s, ok := m.Interface().(*pg.SubLink); ok {
		return s
	}
	var found *pg.SubLink
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && found == nil; i++ {
				found = findSubLink(l.Get(i).Message())
			}
		} else {
			found = findSubLink(v.Message())
		}
		return found == nil
	})
	return found
}

// subquery compiles `left IN (SELECT …)` into a literal on its
// (deduplicated) dependency.
func (p *planner) subquery(s *pg.SubLink, neg bool) (*boolTree, error) {
	if s.SubLinkType != pg.SubLinkType_ANY_SUBLINK || len(s.OperName) != 0 {
		return nil, errAt(s.Location, "only `value IN (SELECT ...)` subqueries are supported")
	}
	left, err := p.leftColumns(s)
	if err != nil {
		return nil, err
	}
	dep, err := p.dependency(s, left)
	if err != nil {
		return nil, err
	}
	d, ok := p.byKey[dep.key()]
	if !ok {
		d = len(p.deps)
		p.deps = append(p.deps, dep)
		p.byKey[dep.key()] = d
		p.neg[d] = neg
	}
	if p.neg[d] != neg {
		return nil, errAt(s.Location, "a subquery cannot be used both negated and not negated in the same where clause")
	}
	return &boolTree{op: opLit, lit: &literal{dep: d, cols: left}}, nil
}

// leftColumns resolves the left side of IN: a column or a row of columns
// of the outer table.
func (p *planner) leftColumns(s *pg.SubLink) ([]Column, error) {
	args := []*pg.Node{s.Testexpr}
	if r := s.Testexpr.GetRowExpr(); r != nil {
		args = r.Args
	}
	var cols []Column
	for _, a := range args {
		ref := a.GetColumnRef()
		if ref == nil {
			return nil, errAt(s.Location, "the left side of IN (SELECT ...) must be a column or a list of columns")
		}
		c, err := p.columnRef(ref, p.tr.cols)
		if err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, nil
}

// columnRef resolves a bare column reference against cols.
func (p *planner) columnRef(ref *pg.ColumnRef, cols map[string]Column) (Column, error) {
	var parts []string
	for _, f := range ref.Fields {
		s := f.GetString_()
		if s == nil {
			return Column{}, errAt(ref.Location, "expected a plain column name, not *")
		}
		parts = append(parts, s.Sval)
	}
	name := strings.Join(parts, ".")
	c, ok := cols[name]
	if len(parts) != 1 || !ok {
		return Column{}, errAt(ref.Location, "unknown reference %s", name)
	}
	return c, nil
}

// plainRef reports whether ref is made of names only (no *).
func plainRef(ref *pg.ColumnRef) bool {
	for _, f := range ref.Fields {
		if f.GetString_() == nil {
			return false
		}
	}
	return true
}

// dependency checks the subquery's SELECT and builds its dependency.
func (p *planner) dependency(s *pg.SubLink, left []Column) (*Dependency, error) {
	sel := s.Subselect.GetSelectStmt()
	if sel == nil {
		return nil, errAt(s.Location, "unsupported subquery")
	}
	if sel.Op != pg.SetOperation_SETOP_NONE || len(sel.FromClause) != 1 || sel.FromClause[0].GetRangeVar() == nil {
		return nil, errAt(s.Location, "a subquery must select from exactly one table (no joins, UNION, VALUES or subselects in FROM)")
	}
	if len(sel.DistinctClause) != 0 || sel.IntoClause != nil || len(sel.GroupClause) != 0 || sel.GroupDistinct ||
		sel.HavingClause != nil || len(sel.WindowClause) != 0 || len(sel.ValuesLists) != 0 ||
		len(sel.SortClause) != 0 || sel.LimitOffset != nil || sel.LimitCount != nil ||
		len(sel.LockingClause) != 0 || sel.WithClause != nil {
		return nil, errAt(s.Location, "a subquery must not have clauses other than FROM and WHERE (no DISTINCT, GROUP BY, HAVING, WINDOW, ORDER BY, LIMIT, OFFSET, FOR UPDATE or WITH)")
	}
	rv := sel.FromClause[0].GetRangeVar()
	if rv.Catalogname != "" || rv.Alias != nil || !rv.Inh || rv.Relpersistence != "p" {
		return nil, errAt(rv.Location, "a subquery's FROM must name a table plainly (optionally schema-qualified, without alias or ONLY)")
	}
	ref := TableRef{Schema: rv.Schemaname, Name: rv.Relname}
	t, err := p.tables(ref)
	if err != nil {
		return nil, &TableError{Ref: ref, Err: err}
	}
	inner := map[string]Column{}
	for _, c := range t.Columns {
		inner[c.Name] = c
	}
	dep := &Dependency{Schema: t.Schema, Table: t.Name}
	for _, rt := range sel.TargetList {
		res := rt.GetResTarget()
		ref := res.GetVal().GetColumnRef()
		if ref == nil || res.Name != "" || len(res.Indirection) != 0 || !plainRef(ref) {
			return nil, errAt(res.GetLocation(), "a subquery's select list must be plain column names")
		}
		c, err := p.columnRef(ref, inner)
		if err != nil {
			return nil, err
		}
		dep.Columns = append(dep.Columns, c.Name)
		dep.Types = append(dep.Types, c.typ())
	}
	switch {
	case len(dep.Columns) > len(left):
		return nil, errAt(s.Location, "subquery has too many columns")
	case len(dep.Columns) < len(left):
		return nil, errAt(s.Location, "subquery has too few columns")
	}
	for i, c := range left {
		if c.typ() != dep.Types[i] {
			return nil, errAt(s.Location, "left side of IN (SELECT ...) has type %s but the subquery returns %s (the types must be the same; there are no implicit casts)",
				c.typ(), dep.Types[i])
		}
		if !keyable(dep.Types[i]) {
			return nil, errAt(s.Location, "IN (SELECT ...) is not supported for columns of type %s", dep.Types[i])
		}
	}
	if sel.WhereClause != nil {
		plan, err := newPlan(sel.WhereClause, t.Columns, p.params, p.tables, p.depth)
		if err != nil {
			return nil, err
		}
		dep.Plan = plan
		dep.Where = plan.SQL()
	}
	return dep, nil
}
