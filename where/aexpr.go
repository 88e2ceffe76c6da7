package where

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

func opName(names []*pg.Node) string {
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1].GetString_().GetSval()
}

// aexpr transforms operator expressions (A_Expr) of every kind.
func (tr *transformer) aexpr(a *pg.A_Expr) (node, error) {
	op := opName(a.Name)
	switch a.Kind {
	case pg.A_Expr_Kind_AEXPR_OP, pg.A_Expr_Kind_AEXPR_LIKE, pg.A_Expr_Kind_AEXPR_ILIKE:
		if a.Lexpr == nil {
			return tr.unary(op, a)
		}
		l, r, err := tr.operands(a.Lexpr, a.Rexpr)
		if err != nil {
			return nil, err
		}
		return tr.binOp(op, l, r, a.Location)
	case pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL:
		l, r, err := tr.operands(a.Lexpr, a.Rexpr)
		if err != nil {
			return nil, err
		}
		return tr.anyAll(op, l, r, a.Kind == pg.A_Expr_Kind_AEXPR_OP_ALL, a.Location)
	case pg.A_Expr_Kind_AEXPR_DISTINCT, pg.A_Expr_Kind_AEXPR_NOT_DISTINCT:
		return tr.distinct(a)
	case pg.A_Expr_Kind_AEXPR_IN:
		return tr.in(a, op)
	case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN,
		pg.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		return tr.between(a)
	}
	return nil, errAt(a.Location, "%s is not supported", a.Kind.String()[6:])
}

func (tr *transformer) operands(l, r *pg.Node) (node, node, error) {
	ln, err := tr.expr(l)
	if err != nil {
		return nil, nil, err
	}
	rn, err := tr.expr(r)
	if err != nil {
		return nil, nil, err
	}
	return ln, rn, nil
}

func (tr *transformer) unary(op string, a *pg.A_Expr) (node, error) {
	arg, err := tr.expr(a.Rexpr)
	if err != nil {
		return nil, err
	}
	cands := unarySigs(op)
	if cands == nil {
		return nil, errAt(a.Location, "operator %s is not supported", op)
	}
	s, ok, ambiguous := resolveOp(cands, Type{}, arg.typ())
	if !ok {
		return nil, errAt(a.Location, "operator %s: %s %s", notFound(ambiguous), op, arg.typ())
	}
	if arg, err = tr.coerce(arg, s.r, a.Location); err != nil {
		return nil, err
	}
	un := makeUnary(op, s.r)
	fn := func(v []any) (any, error) { return un(v[0]) }
	return fold(&funcNode{name: op, infix: true, args: []node{arg}, t: s.r, strict: true, fn: fn}, a.Location)
}

// binOp resolves and builds a binary operator.
func (tr *transformer) binOp(op string, l, r node, loc int32) (node, error) {
	switch op {
	case "||":
		return tr.concatOp(l, r, loc)
	case "@>", "<@", "&&":
		return tr.arrayOp(op, l, r, loc)
	}
	res, s, fn, err := tr.resolveBinary(op, l.typ(), r.typ(), loc)
	if err != nil {
		return nil, err
	}
	if l, err = tr.coerce(l, s.l, loc); err != nil {
		return nil, err
	}
	if r, err = tr.coerce(r, s.r, loc); err != nil {
		return nil, err
	}
	return fold(&funcNode{name: op, infix: true, args: []node{l, r}, t: res, strict: true,
		fn: func(v []any) (any, error) { return fn(v[0], v[1]) }}, loc)
}

// resolveBinary picks the operator implementation for input types lt, rt.
func (tr *transformer) resolveBinary(op string, lt, rt Type, loc int32) (Type, sig, binFn, error) {
	notExist := errAt(loc, "operator does not exist: %s %s %s", lt, op, rt)
	if isCmp(op) && (lt.Array || rt.Array || lt.Enum || rt.Enum) {
		t := lt
		if lt.isUnknown() {
			t = rt
		}
		if !canImplicit(lt, t) || !canImplicit(rt, t) {
			return Type{}, sig{}, nil, notExist
		}
		if op != "=" && op != "<>" || equality(t) == nil {
			return Type{}, sig{}, nil, errAt(loc, "operator %s is not supported for type %s (only = and <>)", op, t)
		}
		return tBool, sig{t, t}, makeCompare(op, t, t), nil
	}
	cands := sigsFor(op)
	if cands == nil {
		return Type{}, sig{}, nil, errAt(loc, "operator %s is not supported", op)
	}
	s, ok, ambiguous := resolveOp(cands, lt, rt)
	if !ok {
		return Type{}, sig{}, nil, errAt(loc, "operator %s: %s %s %s", notFound(ambiguous), lt, op, rt)
	}
	switch {
	case isCmp(op):
		if op != "=" && op != "<>" && s.l == tJSONB {
			return Type{}, sig{}, nil, errAt(loc, "operator %s is not supported for type jsonb", op)
		}
		return tBool, s, makeCompare(op, s.l, s.r), nil
	case op == "~~" || op == "!~~" || op == "~~*" || op == "!~~*":
		return tBool, s, likeFn(op), nil
	}
	switch {
	case op == "^" && s.l == tNumeric:
		return tNumeric, s, numericPow, nil
	case op == "^":
		return tFloat8, s, floatPow, nil
	case op == "&" || op == "|" || op == "#":
		return s.l, s, bitArith(op), nil
	case s.l == tInterval && s.r == tFloat8 || s.l == tFloat8 && s.r == tInterval:
		return tInterval, s, floatScale(op, s), nil
	}
	res, fn := makeArith(op, s)
	return res, s, fn, nil
}

func notFound(ambiguous bool) string {
	if ambiguous {
		return "is not unique"
	}
	return "does not exist"
}

func isCmp(op string) bool {
	switch op {
	case "=", "<>", "<", ">", "<=", ">=":
		return true
	}
	return false
}

func likeFn(op string) binFn {
	ci := op == "~~*" || op == "!~~*"
	neg := op == "!~~" || op == "!~~*"
	return func(a, b any) (any, error) {
		s, p := a.(string), b.(string)
		if ci {
			s, p = asciiLower(s), asciiLower(p)
		}
		m, err := likeMatch(s, p)
		if err != nil {
			return nil, err
		}
		return m != neg, nil
	}
}

// anyAll builds "l op ANY/ALL (r)".
func (tr *transformer) anyAll(op string, l, r node, all bool, loc int32) (node, error) {
	rt := r.typ()
	elem := rt
	if rt.Array {
		elem = rt.elem()
	} else if !rt.isUnknown() {
		return nil, errAt(loc, "op ANY/ALL (array) requires array on right side")
	}
	res, s, fn, err := tr.resolveBinary(op, l.typ(), elem, loc)
	if err != nil {
		return nil, err
	}
	if res != tBool {
		return nil, errAt(loc, "op ANY/ALL (array) requires operator to yield boolean")
	}
	if l, err = tr.coerce(l, s.l, loc); err != nil {
		return nil, err
	}
	if r, err = tr.coerceArray(r, s.r.arrayOf(), loc); err != nil {
		return nil, err
	}
	return fold(&anyNode{l: l, arr: r, op: op, all: all, cmp: fn}, loc)
}

// coerceArray coerces an array (or unknown literal) to array type to,
// converting elements when their types differ.
func (tr *transformer) coerceArray(n node, to Type, loc int32) (node, error) {
	if n.typ() == to || n.typ().isUnknown() {
		return tr.coerce(n, to, loc)
	}
	if !canImplicit(n.typ().elem(), to.elem()) {
		return nil, errAt(loc, "cannot coerce %s to %s", n.typ(), to)
	}
	return fold(&castNode{arg: n, t: to, fn: arrayCast(n.typ(), to)}, loc)
}

func (tr *transformer) distinct(a *pg.A_Expr) (node, error) {
	l, r, err := tr.operands(a.Lexpr, a.Rexpr)
	if err != nil {
		return nil, err
	}
	_, s, fn, err := tr.resolveBinary("=", l.typ(), r.typ(), a.Location)
	if err != nil {
		return nil, err
	}
	if l, err = tr.coerce(l, s.l, a.Location); err != nil {
		return nil, err
	}
	if r, err = tr.coerce(r, s.r, a.Location); err != nil {
		return nil, err
	}
	return fold(&distinctNode{l: l, r: r, eq: fn, not: a.Kind == pg.A_Expr_Kind_AEXPR_NOT_DISTINCT}, a.Location)
}
