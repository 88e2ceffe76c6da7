package where

import "strings"

// boolOpNode is AND / OR with SQL three-valued logic. An evaluation error
// in one argument is reported only when no other argument decides the
// result (a FALSE for AND, a TRUE for OR): either way the row cannot match.
type boolOpNode struct {
	and  bool
	args []node
}

func (n *boolOpNode) typ() Type    { return tBool }
func (n *boolOpNode) kids() []node { return n.args }
func (n *boolOpNode) eval(r Row) (any, error) {
	sawNull := false
	var firstErr error
	for _, a := range n.args {
		v, err := a.eval(r)
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
		case v == nil:
			sawNull = true
		case v.(bool) != n.and:
			return !n.and, nil
		}
	}
	switch {
	case firstErr != nil:
		return nil, firstErr
	case sawNull:
		return nil, nil
	}
	return n.and, nil
}
func (n *boolOpNode) sql(b *strings.Builder) {
	op := " OR "
	if n.and {
		op = " AND "
	}
	b.WriteByte('(')
	for i, a := range n.args {
		if i > 0 {
			b.WriteString(op)
		}
		a.sql(b)
	}
	b.WriteByte(')')
}

// newBoolOp builds AND/OR, flattening nested operations of the same kind
// (as Postgres' parser does, so SQL() output re-parses to the same tree).
func newBoolOp(and bool, args []node) *boolOpNode {
	var flat []node
	for _, a := range args {
		if b, ok := a.(*boolOpNode); ok && b.and == and {
			flat = append(flat, b.args...)
		} else {
			flat = append(flat, a)
		}
	}
	return &boolOpNode{and: and, args: flat}
}

// notNode is NOT.
type notNode struct{ arg node }

func (n *notNode) typ() Type    { return tBool }
func (n *notNode) kids() []node { return []node{n.arg} }
func (n *notNode) eval(r Row) (any, error) {
	v, err := n.arg.eval(r)
	if err != nil || v == nil {
		return nil, err
	}
	return !v.(bool), nil
}
func (n *notNode) sql(b *strings.Builder) {
	b.WriteString("(NOT ")
	n.arg.sql(b)
	b.WriteByte(')')
}

// testNode is IS [NOT] NULL and IS [NOT] TRUE/FALSE/UNKNOWN; it is never NULL.
type testNode struct {
	arg  node
	kind string // "NULL", "TRUE", "FALSE", "UNKNOWN"
	not  bool
}

func (n *testNode) typ() Type    { return tBool }
func (n *testNode) kids() []node { return []node{n.arg} }
func (n *testNode) eval(r Row) (any, error) {
	v, err := n.arg.eval(r)
	if err != nil {
		return nil, err
	}
	var res bool
	switch n.kind {
	case "TRUE":
		res = v != nil && v.(bool)
	case "FALSE":
		res = v != nil && !v.(bool)
	default:
		res = v == nil
	}
	return res != n.not, nil
}
func (n *testNode) sql(b *strings.Builder) {
	b.WriteByte('(')
	n.arg.sql(b)
	b.WriteString(" IS ")
	if n.not {
		b.WriteString("NOT ")
	}
	b.WriteString(n.kind + ")")
}

// distinctNode is IS [NOT] DISTINCT FROM over a resolved "=" operator.
type distinctNode struct {
	l, r node
	eq   func(a, b any) (any, error)
	not  bool
}

func (n *distinctNode) typ() Type    { return tBool }
func (n *distinctNode) kids() []node { return []node{n.l, n.r} }
func (n *distinctNode) eval(r Row) (any, error) {
	a, err := n.l.eval(r)
	if err != nil {
		return nil, err
	}
	b, err := n.r.eval(r)
	if err != nil {
		return nil, err
	}
	var distinct bool
	switch {
	case a == nil || b == nil:
		distinct = (a == nil) != (b == nil)
	default:
		eq, err := n.eq(a, b)
		if err != nil {
			return nil, err
		}
		distinct = !eq.(bool)
	}
	return distinct != n.not, nil
}
func (n *distinctNode) sql(b *strings.Builder) {
	b.WriteByte('(')
	n.l.sql(b)
	if n.not {
		b.WriteString(" IS NOT DISTINCT FROM ")
	} else {
		b.WriteString(" IS DISTINCT FROM ")
	}
	n.r.sql(b)
	b.WriteByte(')')
}

// anyNode is "l op ANY (arr)" / "l op ALL (arr)".
type anyNode struct {
	l, arr node
	op     string
	all    bool
	cmp    func(a, b any) (any, error)
}

func (n *anyNode) typ() Type    { return tBool }
func (n *anyNode) kids() []node { return []node{n.l, n.arr} }
func (n *anyNode) eval(r Row) (any, error) {
	av, err := n.arr.eval(r)
	if err != nil || av == nil {
		return nil, err
	}
	elems := av.(*array).elems
	if len(elems) == 0 {
		return n.all, nil
	}
	l, err := n.l.eval(r)
	if err != nil || l == nil {
		return nil, err
	}
	sawNull := false
	for _, e := range elems {
		if e == nil {
			sawNull = true
			continue
		}
		v, err := n.cmp(l, e)
		if err != nil {
			return nil, err
		}
		if v == nil {
			sawNull = true
		} else if v.(bool) != n.all {
			return !n.all, nil
		}
	}
	if sawNull {
		return nil, nil
	}
	return n.all, nil
}
func (n *anyNode) sql(b *strings.Builder) {
	b.WriteByte('(')
	n.l.sql(b)
	b.WriteString(" " + n.op + " ")
	if n.all {
		b.WriteString("ALL (")
	} else {
		b.WriteString("ANY (")
	}
	n.arr.sql(b)
	b.WriteString("))")
}

// arrayCtorNode is ARRAY[e1, e2, ...] (one-dimensional).
type arrayCtorNode struct {
	elems []node
	t     Type
}

func (n *arrayCtorNode) typ() Type    { return n.t }
func (n *arrayCtorNode) kids() []node { return n.elems }
func (n *arrayCtorNode) eval(r Row) (any, error) {
	a := &array{elems: make([]any, len(n.elems))}
	for i, e := range n.elems {
		v, err := e.eval(r)
		if err != nil {
			return nil, err
		}
		a.elems[i] = v
	}
	if len(a.elems) > 0 {
		a.dims = []int{len(a.elems)}
	}
	return a, charge(r, a)
}
func (n *arrayCtorNode) sql(b *strings.Builder) {
	b.WriteString("ARRAY[")
	for i, e := range n.elems {
		if i > 0 {
			b.WriteString(", ")
		}
		e.sql(b)
	}
	b.WriteString("]::" + n.t.sqlName())
}
