package where

import (
	"errors"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// transformer turns libpg_query's raw parse tree into type-checked nodes.
type transformer struct {
	cols   map[string]Column
	params map[string]string
	depth  int
}

const maxDepth = 200

// expr transforms one expression node.
func (tr *transformer) expr(n *pg.Node) (node, error) {
	tr.depth++
	defer func() { tr.depth-- }()
	if tr.depth > maxDepth {
		return nil, errorf("expression is too deeply nested")
	}
	switch x := n.Node.(type) {
	case *pg.Node_AConst:
		return constant(x.AConst)
	case *pg.Node_ColumnRef:
		return tr.column(x.ColumnRef)
	case *pg.Node_ParamRef:
		return tr.param(x.ParamRef)
	case *pg.Node_AExpr:
		return tr.aexpr(x.AExpr)
	case *pg.Node_BoolExpr:
		return tr.boolExpr(x.BoolExpr)
	case *pg.Node_NullTest:
		return tr.nullTest(x.NullTest)
	case *pg.Node_BooleanTest:
		return tr.booleanTest(x.BooleanTest)
	case *pg.Node_TypeCast:
		return tr.typeCast(x.TypeCast)
	case *pg.Node_FuncCall:
		return tr.funcCall(x.FuncCall)
	case *pg.Node_CoalesceExpr:
		return tr.coalesce(x.CoalesceExpr)
	case *pg.Node_MinMaxExpr:
		return tr.minMax(x.MinMaxExpr)
	case *pg.Node_AArrayExpr:
		return tr.arrayExpr(x.AArrayExpr)
	case *pg.Node_SubLink:
		return nil, errAt(x.SubLink.Location, "Subqueries are not supported")
	case *pg.Node_SqlvalueFunction:
		return nil, errAt(x.SqlvalueFunction.Location, "non-deterministic functions are not supported (%s)",
			strings.ToLower(strings.TrimPrefix(x.SqlvalueFunction.Op.String(), "SVFOP_")))
	case *pg.Node_CollateClause:
		return nil, errAt(x.CollateClause.Location, "COLLATE is not supported")
	case *pg.Node_CaseExpr:
		return nil, errAt(x.CaseExpr.Location, "CASE expressions are not supported")
	case *pg.Node_NullIfExpr:
		return nil, errAt(x.NullIfExpr.Location, "NULLIF is not supported")
	case *pg.Node_AIndirection:
		return nil, errorf("array subscripts and field selection are not supported")
	}
	return nil, errorf("unsupported expression in where clause: %T", n.Node)
}

// constant types a literal: integers are int4 (int8 or numeric when
// larger), decimals numeric, strings unknown until context decides.
func constant(c *pg.A_Const) (node, error) {
	if c.Isnull {
		return &constNode{t: tUnknown, null: true, loc: c.Location}, nil
	}
	switch v := c.Val.(type) {
	case *pg.A_Const_Ival:
		return &constNode{t: tInt4, v: int64(v.Ival.Ival), loc: c.Location}, nil
	case *pg.A_Const_Fval:
		s := v.Fval.Fval
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return &constNode{t: tInt8, v: i, loc: c.Location}, nil
		}
		n, err := parseNumeric(s)
		if err != nil {
			return nil, withLoc(err, c.Location)
		}
		return &constNode{t: tNumeric, v: n, loc: c.Location}, nil
	case *pg.A_Const_Boolval:
		return &constNode{t: tBool, v: v.Boolval.Boolval, loc: c.Location}, nil
	case *pg.A_Const_Sval:
		return &constNode{t: tUnknown, raw: v.Sval.Sval, loc: c.Location}, nil
	}
	return nil, errAt(c.Location, "bit string literals are not supported")
}

func (tr *transformer) column(c *pg.ColumnRef) (node, error) {
	var parts []string
	for _, f := range c.Fields {
		s := f.GetString_()
		if s == nil {
			return nil, errAt(c.Location, "unsupported column reference")
		}
		parts = append(parts, s.Sval)
	}
	name := strings.Join(parts, ".")
	col, ok := tr.cols[name]
	if len(parts) != 1 || !ok {
		return nil, errAt(c.Location, "unknown reference %s", name)
	}
	return &colNode{name: col.Name, t: col.typ()}, nil
}

func (tr *transformer) param(p *pg.ParamRef) (node, error) {
	key := strconv.Itoa(int(p.Number))
	v, ok := tr.params[key]
	if !ok {
		return nil, errAt(p.Location, "parameter $%s was not provided", key)
	}
	return &constNode{t: tUnknown, raw: v, loc: p.Location, param: true}, nil
}

// coerce converts n to type to: unknown literals are parsed with to's input
// function, other values get an implicit cast.
func (tr *transformer) coerce(n node, to Type, loc int32) (node, error) {
	if n.typ() == to {
		return n, nil
	}
	if c, ok := n.(*constNode); ok && c.t.isUnknown() {
		if c.null {
			return &constNode{t: to, null: true, loc: c.loc}, nil
		}
		v, err := parseValue(c.raw, to)
		if err != nil {
			return nil, withLoc(err, c.loc)
		}
		return &constNode{t: to, v: v, loc: c.loc, param: c.param}, nil
	}
	if !canImplicit(n.typ(), to) {
		return nil, errAt(loc, "cannot coerce %s to %s", n.typ(), to)
	}
	return fold(&castNode{arg: n, t: to, fn: makeCast(n.typ(), to)}, loc)
}

// fold evaluates a node that references no columns into a constant. A
// failing evaluation (like 1/0) yields a failedNode; Parse reports it only
// if Postgres' planner would reach it too (see firstConstError), after all
// type errors, as Postgres does.
func fold(n node, loc int32) (node, error) {
	if _, ok := n.(*constNode); ok {
		return n, nil
	}
	if expandedSize(n) > maxExpandedSize {
		return nil, errAt(loc, "where clause is too complex")
	}
	if hasColumn(n) {
		return n, nil
	}
	v, err := n.eval(&budgetRow{left: EvalBudget})
	if errors.Is(err, ErrTooCostly) {
		// Refused whether or not Postgres would reach it: volt would
		// pay for it on every row.
		return nil, withLoc(err, loc)
	}
	if err != nil {
		return &failedNode{node: n, err: withLoc(err, loc)}, nil
	}
	return &constNode{t: n.typ(), v: v, null: v == nil, loc: loc}, nil
}

// failedNode is a constant subexpression whose evaluation fails.
type failedNode struct {
	node
	err *Error
}

func (f *failedNode) eval(Row) (any, error) { return nil, f.err }

// firstConstError returns the error of the first failed constant that
// Postgres' constant folding (eval_const_expressions) would evaluate: it
// stops at a deciding constant in AND/OR, and COALESCE drops arguments
// after a non-NULL constant (done when building it).
func firstConstError(n node) error {
	switch x := n.(type) {
	case *failedNode:
		return x.err
	case *boolOpNode:
		for _, a := range x.args {
			if err := firstConstError(a); err != nil {
				return err
			}
			if c, ok := a.(*constNode); ok && !c.null && c.v.(bool) != x.and {
				return nil
			}
		}
		return nil
	}
	for _, k := range n.kids() {
		if err := firstConstError(k); err != nil {
			return err
		}
	}
	return nil
}

func (tr *transformer) typeCast(tc *pg.TypeCast) (node, error) {
	arg, err := tr.expr(tc.Arg)
	if err != nil {
		return nil, err
	}
	tn := tc.TypeName
	var names []string
	for _, n := range tn.Names {
		names = append(names, n.GetString_().GetSval())
	}
	name := resolveTypeName(names)
	if len(tn.Typmods) > 0 {
		return nil, errAt(tc.Location, "type modifiers are not supported in casts (%s)", name)
	}
	if !castTargets[name] {
		return nil, errAt(tc.Location, "casting to type %s is not supported", name)
	}
	to := Type{Name: name, Array: len(tn.ArrayBounds) > 0}
	if c, ok := arg.(*constNode); ok && c.t.isUnknown() {
		return tr.coerce(arg, to, tc.Location)
	}
	if arg.typ() == to {
		return arg, nil
	}
	fn := makeCast(arg.typ(), to)
	if fn == nil {
		return nil, errAt(tc.Location, "cannot cast type %s to %s", arg.typ(), to)
	}
	return fold(&castNode{arg: arg, t: to, fn: fn}, tc.Location)
}

func (tr *transformer) boolArg(n *pg.Node, what string) (node, error) {
	x, err := tr.expr(n)
	if err != nil {
		return nil, err
	}
	if c, ok := x.(*constNode); ok && c.t.isUnknown() {
		return tr.coerce(x, tBool, c.loc)
	}
	if x.typ() != tBool {
		return nil, errorf("argument of %s must be type boolean, not type %s", what, x.typ())
	}
	return x, nil
}

func (tr *transformer) boolExpr(b *pg.BoolExpr) (node, error) {
	what := strings.TrimSuffix(b.Boolop.String(), "_EXPR")
	var args []node
	for _, a := range b.Args {
		x, err := tr.boolArg(a, what)
		if err != nil {
			return nil, err
		}
		args = append(args, x)
	}
	if b.Boolop == pg.BoolExprType_NOT_EXPR {
		return fold(&notNode{arg: args[0]}, b.Location)
	}
	return fold(newBoolOp(b.Boolop == pg.BoolExprType_AND_EXPR, args), b.Location)
}

func (tr *transformer) nullTest(t *pg.NullTest) (node, error) {
	arg, err := tr.expr(t.Arg)
	if err != nil {
		return nil, err
	}
	return fold(&testNode{arg: arg, kind: "NULL", not: t.Nulltesttype == pg.NullTestType_IS_NOT_NULL}, t.Location)
}

func (tr *transformer) booleanTest(t *pg.BooleanTest) (node, error) {
	kind := strings.TrimPrefix(strings.TrimPrefix(t.Booltesttype.String(), "IS_"), "NOT_")
	arg, err := tr.boolArg(t.Arg, "IS "+kind)
	if err != nil {
		return nil, err
	}
	not := strings.HasPrefix(t.Booltesttype.String(), "IS_NOT_")
	return fold(&testNode{arg: arg, kind: kind, not: not}, t.Location)
}
