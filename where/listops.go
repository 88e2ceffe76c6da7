package where

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

func hasColumn(n node) bool {
	found := false
	walk(n, func(x node) {
		if _, ok := x.(*colNode); ok {
			found = true
		}
	})
	return found
}

// in implements [NOT] IN (list) like transformAExprIn: constant items
// sharing a common type with the left side are compared at that type,
// other items one by one; results are OR-ed (AND-ed for NOT IN).
func (tr *transformer) in(a *pg.A_Expr, op string) (node, error) {
	l, err := tr.expr(a.Lexpr)
	if err != nil {
		return nil, err
	}
	var consts, others []node
	for _, it := range a.Rexpr.GetList().GetItems() {
		x, err := tr.expr(it)
		if err != nil {
			return nil, err
		}
		if hasColumn(x) {
			others = append(others, x)
		} else {
			consts = append(consts, x)
		}
	}
	var parts []node
	if len(consts) > 1 {
		types := []Type{l.typ()}
		for _, c := range consts {
			types = append(types, c.typ())
		}
		if ct, ok := commonType(types); ok {
			if parts, err = tr.inCommon(op, l, consts, ct, a.Location); err != nil {
				return nil, err
			}
			consts = nil
		}
	}
	for _, x := range append(consts, others...) {
		p, err := tr.binOp(op, l, x, a.Location)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return fold(newBoolOp(op == "<>", parts), a.Location)
}

func (tr *transformer) inCommon(op string, l node, items []node, ct Type, loc int32) ([]node, error) {
	res, s, fn, err := tr.resolveBinary(op, l.typ(), ct, loc)
	if err != nil {
		return nil, err
	}
	if res != tBool {
		return nil, errAt(loc, "IN requires a boolean operator")
	}
	if l, err = tr.coerce(l, s.l, loc); err != nil {
		return nil, err
	}
	var parts []node
	for _, it := range items {
		x, err := tr.coerce(it, ct, loc)
		if err != nil {
			return nil, err
		}
		if x, err = tr.coerce(x, s.r, loc); err != nil {
			return nil, err
		}
		p, err := fold(&funcNode{name: op, infix: true, args: []node{l, x}, t: tBool, strict: true,
			fn: func(v []any) (any, error) { return fn(v[0], v[1]) }}, loc)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// between expands [NOT] BETWEEN [SYMMETRIC] into comparisons as Postgres does.
func (tr *transformer) between(a *pg.A_Expr) (node, error) {
	l, err := tr.expr(a.Lexpr)
	if err != nil {
		return nil, err
	}
	items := a.Rexpr.GetList().GetItems()
	if len(items) != 2 {
		return nil, errAt(a.Location, "malformed BETWEEN")
	}
	lo, hi, err := tr.operands(items[0], items[1])
	if err != nil {
		return nil, err
	}
	cmp2 := func(op1 string, x node, op2 string, y node, and bool) (node, error) {
		p, err := tr.binOp(op1, l, x, a.Location)
		if err != nil {
			return nil, err
		}
		q, err := tr.binOp(op2, l, y, a.Location)
		if err != nil {
			return nil, err
		}
		return fold(newBoolOp(and, []node{p, q}), a.Location)
	}
	not := a.Kind == pg.A_Expr_Kind_AEXPR_NOT_BETWEEN || a.Kind == pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM
	sym := a.Kind == pg.A_Expr_Kind_AEXPR_BETWEEN_SYM || a.Kind == pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM
	first, err := map[bool]func() (node, error){
		false: func() (node, error) { return cmp2(">=", lo, "<=", hi, true) },
		true:  func() (node, error) { return cmp2("<", lo, ">", hi, false) },
	}[not]()
	if err != nil || !sym {
		return first, err
	}
	var second node
	if not {
		second, err = cmp2("<", hi, ">", lo, false)
	} else {
		second, err = cmp2(">=", hi, "<=", lo, true)
	}
	if err != nil {
		return nil, err
	}
	return fold(newBoolOp(not, []node{first, second}), a.Location)
}

func stringish(t Type) bool { return isStringType(t) || t.isUnknown() }

// concatOp implements ||: text || text, text || non-text (cast to text),
// bytea || bytea.
func (tr *transformer) concatOp(l, r node, loc int32) (node, error) {
	lt, rt := l.typ(), r.typ()
	var err error
	switch {
	case lt.Array || rt.Array:
		return tr.arrayConcat(l, r, loc)
	case lt == tBytea && (rt == tBytea || rt.isUnknown()) || rt == tBytea && lt.isUnknown():
		if l, err = tr.coerce(l, tBytea, loc); err == nil {
			r, err = tr.coerce(r, tBytea, loc)
		}
		if err != nil {
			return nil, err
		}
		return fold(&funcNode{name: "||", infix: true, args: []node{l, r}, t: tBytea, strict: true, fn: catStrings}, loc)
	case stringish(lt) && stringish(rt), stringish(lt) && !rt.isUnknown(), stringish(rt) && !lt.isUnknown():
	default:
		return nil, errAt(loc, "operator does not exist: %s || %s", lt, rt)
	}
	if l, err = tr.toText(l, loc); err != nil {
		return nil, err
	}
	if r, err = tr.toText(r, loc); err != nil {
		return nil, err
	}
	return fold(&funcNode{name: "||", infix: true, args: []node{l, r}, t: tText, strict: true, fn: catStrings}, loc)
}

func catStrings(v []any) (any, error) { return v[0].(string) + v[1].(string), nil }

// toText coerces n to text (an explicit cast for non-string types).
func (tr *transformer) toText(n node, loc int32) (node, error) {
	if stringish(n.typ()) {
		return tr.coerce(n, tText, loc)
	}
	fn := makeCast(n.typ(), tText)
	if fn == nil {
		return nil, errAt(loc, "cannot cast type %s to text", n.typ())
	}
	return fold(&castNode{arg: n, t: tText, fn: fn}, loc)
}

// arrayOp implements @>, <@ and && between arrays of the same type.
func (tr *transformer) arrayOp(op string, l, r node, loc int32) (node, error) {
	t := l.typ()
	if t.isUnknown() {
		t = r.typ()
	}
	if !t.Array || !canImplicit(l.typ(), t) || !canImplicit(r.typ(), t) {
		return nil, errAt(loc, "operator does not exist: %s %s %s", l.typ(), op, r.typ())
	}
	eq := equality(t.elem())
	if eq == nil {
		return nil, errAt(loc, "operator %s is not supported for type %s", op, t)
	}
	var err error
	if l, err = tr.coerce(l, t, loc); err != nil {
		return nil, err
	}
	if r, err = tr.coerce(r, t, loc); err != nil {
		return nil, err
	}
	fn := func(v []any) (any, error) {
		a, b := v[0].(*array), v[1].(*array)
		switch op {
		case "@>":
			return arrayContains(a, b, eq), nil
		case "<@":
			return arrayContains(b, a, eq), nil
		}
		return arrayOverlaps(a, b, eq), nil
	}
	return fold(&funcNode{name: op, infix: true, args: []node{l, r}, t: tBool, strict: true, fn: fn}, loc)
}
