package where

import (
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var nonDeterministic = map[string]bool{
	"now": true, "random": true, "clock_timestamp": true, "statement_timestamp": true,
	"transaction_timestamp": true, "timeofday": true, "gen_random_uuid": true, "uuid_generate_v4": true,
	"setseed": true, "nextval": true, "currval": true, "lastval": true, "txid_current": true,
	"pg_current_xact_id": true, "random_normal": true, "uuidv4": true, "uuidv7": true,
}

var aggregates = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true, "array_agg": true,
	"string_agg": true, "bool_and": true, "bool_or": true, "every": true, "json_agg": true,
	"jsonb_agg": true, "row_number": true, "rank": true, "dense_rank": true,
}

// funcCall transforms a function call: the supported scalar functions and
// type-named casts (int4(x)); everything else is rejected.
func (tr *transformer) funcCall(f *pg.FuncCall) (node, error) {
	var parts []string
	for _, n := range f.Funcname {
		parts = append(parts, n.GetString_().GetSval())
	}
	name := resolveTypeName(parts)
	switch {
	case f.Over != nil:
		return nil, errAt(f.Location, "window functions are not supported")
	case f.AggStar || f.AggDistinct || len(f.AggOrder) > 0 || f.AggFilter != nil || aggregates[name]:
		return nil, errAt(f.Location, "aggregate functions are not supported (%s)", name)
	case nonDeterministic[name]:
		return nil, errAt(f.Location, "non-deterministic functions are not supported (%s)", name)
	case f.FuncVariadic || len(parts) > 2 || len(parts) == 2 && parts[0] != "pg_catalog":
		return nil, errAt(f.Location, "unknown or unsupported function %s", strings.Join(parts, "."))
	}
	var args []node
	for _, a := range f.Args {
		x, err := tr.expr(a)
		if err != nil {
			return nil, err
		}
		args = append(args, x)
	}
	switch {
	case name == "lower" || name == "upper":
		return tr.caseFunc(name, args, f.Location)
	case name == "length" || name == "char_length" || name == "character_length":
		return tr.length(name, args, f.Location)
	case name == "concat":
		return tr.concatFunc(args, f.Location)
	case name == "like":
		return tr.likeFunc(args, f.Location)
	case name == "array_cat" && len(args) == 2:
		return tr.arrayCat(name, args[0], args[1], f.Location)
	case name == "array_append" && len(args) == 2:
		return tr.arrayAppend(name, args[0], args[1], f.Location)
	case name == "array_prepend" && len(args) == 2:
		return tr.arrayPrepend(name, args[0], args[1], f.Location)
	case name == "array_ndims":
		return tr.arrayNdims(args, f.Location)
	case name == "justify_days" || name == "justify_hours" || name == "justify_interval":
		return tr.justify(name, args, f.Location)
	case name == "timezone":
		return tr.timezone(args, f.Location)
	case castTargets[name] && len(args) == 1:
		return tr.funcCast(name, args[0], f.Location)
	}
	return nil, errAt(f.Location, "unknown or unsupported function %s", name)
}

func sigString(name string, args []node) string {
	ts := make([]string, len(args))
	for i, a := range args {
		ts[i] = a.typ().String()
	}
	return name + "(" + strings.Join(ts, ", ") + ")"
}

func (tr *transformer) caseFunc(name string, args []node, loc int32) (node, error) {
	if len(args) != 1 || !stringish(args[0].typ()) {
		return nil, errAt(loc, "function %s does not exist", sigString(name, args))
	}
	arg, err := tr.coerce(args[0], tText, loc)
	if err != nil {
		return nil, err
	}
	fn := asciiLower
	if name == "upper" {
		fn = asciiUpper
	}
	return fold(&funcNode{name: name, args: []node{arg}, t: tText, strict: true,
		fn: func(v []any) (any, error) { return fn(v[0].(string)), nil }}, loc)
}

func (tr *transformer) length(name string, args []node, loc int32) (node, error) {
	if len(args) != 1 || !(stringish(args[0].typ()) || args[0].typ() == tBytea && name == "length") {
		return nil, errAt(loc, "function %s does not exist", sigString(name, args))
	}
	arg := args[0]
	var err error
	if arg.typ().isUnknown() || arg.typ() == tVarchar {
		if arg, err = tr.coerce(arg, tText, loc); err != nil {
			return nil, err
		}
	}
	t := arg.typ()
	return fold(&funcNode{name: name, args: []node{arg}, t: tInt4, strict: true, fn: func(v []any) (any, error) {
		s := v[0].(string)
		switch t {
		case tBytea:
			return int64(len(s)), nil
		case tBpchar:
			s = strings.TrimRight(s, " ")
		}
		return int64(utf8.RuneCountInString(s)), nil
	}}, loc)
}

// concatFunc is concat(any...): output text of the non-NULL arguments.
func (tr *transformer) concatFunc(args []node, loc int32) (node, error) {
	for i, a := range args {
		if a.typ().isUnknown() {
			x, err := tr.coerce(a, tText, loc)
			if err != nil {
				return nil, err
			}
			args[i] = x
		}
	}
	types := make([]Type, len(args))
	for i, a := range args {
		types[i] = a.typ()
	}
	return fold(&funcNode{name: "concat", args: args, t: tText, fn: func(v []any) (any, error) {
		var b strings.Builder
		for i, x := range v {
			if x != nil {
				b.WriteString(outputValue(x, types[i]))
			}
		}
		return b.String(), nil
	}}, loc)
}

// likeFunc is like(text, text), the function behind ~~.
func (tr *transformer) likeFunc(args []node, loc int32) (node, error) {
	if len(args) != 2 || !stringish(args[0].typ()) || !stringish(args[1].typ()) {
		return nil, errAt(loc, "function %s does not exist", sigString("like", args))
	}
	l, err := tr.coerce(args[0], tText, loc)
	if err != nil {
		return nil, err
	}
	r, err := tr.coerce(args[1], tText, loc)
	if err != nil {
		return nil, err
	}
	fn := likeFn("~~")
	return fold(&funcNode{name: "like", args: []node{l, r}, t: tBool, strict: true,
		fn: func(v []any) (any, error) { return fn(v[0], v[1]) }}, loc)
}

func (tr *transformer) funcCast(name string, arg node, loc int32) (node, error) {
	to := Type{Name: name}
	if arg.typ().isUnknown() {
		return tr.coerce(arg, to, loc)
	}
	fn := makeCast(arg.typ(), to)
	if fn == nil {
		return nil, errAt(loc, "function %s(%s) does not exist", name, arg.typ())
	}
	return fold(&castNode{arg: arg, t: to, fn: fn}, loc)
}

// unify coerces all nodes to their common type (select_common_type);
// src are the nodes' parse trees, for the position of an error.
func (tr *transformer) unify(what string, args []node, src []*pg.Node, loc int32) ([]node, Type, error) {
	types := make([]Type, len(args))
	for i, a := range args {
		types[i] = a.typ()
	}
	ct, bad := commonTypeAt(types)
	if bad >= 0 {
		if bad < len(src) {
			if l, ok := leftmostLocation(src[bad]); ok {
				loc = l
			}
		}
		return nil, Type{}, errAt(loc, "%s types cannot be matched", what)
	}
	out := make([]node, len(args))
	for i, a := range args {
		x, err := tr.coerce(a, ct, loc)
		if err != nil {
			return nil, Type{}, err
		}
		out[i] = x
	}
	return out, ct, nil
}

func (tr *transformer) exprList(list []*pg.Node) ([]node, error) {
	var out []node
	for _, a := range list {
		x, err := tr.expr(a)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// coalesce returns the first non-NULL argument, evaluating lazily.
func (tr *transformer) coalesce(c *pg.CoalesceExpr) (node, error) {
	args, err := tr.exprList(c.Args)
	if err != nil {
		return nil, err
	}
	args, ct, err := tr.unify("COALESCE", args, c.Args, c.Location)
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		if k, ok := a.(*constNode); ok && !k.null {
			if i == 0 {
				return a, nil
			}
			args = args[:i+1] // later arguments are never evaluated (nor folded)
			break
		}
	}
	return fold(&coalesceNode{args: args, t: ct}, c.Location)
}

func (tr *transformer) minMax(m *pg.MinMaxExpr) (node, error) {
	args, err := tr.exprList(m.Args)
	if err != nil {
		return nil, err
	}
	name := "GREATEST"
	if m.Op == pg.MinMaxOp_IS_LEAST {
		name = "LEAST"
	}
	args, ct, err := tr.unify(name, args, m.Args, m.Location)
	if err != nil {
		return nil, err
	}
	cmp := comparator(ct)
	if cmp == nil {
		return nil, errAt(m.Location, "could not identify a comparison function for type %s", ct)
	}
	sign := 1
	if name == "LEAST" {
		sign = -1
	}
	return fold(&funcNode{name: name, args: args, t: ct, fn: func(v []any) (any, error) {
		var best any
		for _, x := range v {
			if x != nil && (best == nil || sign*cmp(x, best) > 0) {
				best = x
			}
		}
		return best, nil
	}}, m.Location)
}

func (tr *transformer) arrayExpr(a *pg.A_ArrayExpr) (node, error) {
	elems, err := tr.exprList(a.Elements)
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, errAt(a.Location, "cannot determine type of empty array")
	}
	for _, e := range elems {
		if e.typ().Array {
			return nil, errAt(a.Location, "multidimensional ARRAY[] constructors are not supported")
		}
	}
	elems, ct, err := tr.unify("ARRAY", elems, a.Elements, a.Location)
	if err != nil {
		return nil, err
	}
	return fold(&arrayCtorNode{elems: elems, t: ct.arrayOf()}, a.Location)
}

// coalesceNode is COALESCE(...).
type coalesceNode struct {
	args []node
	t    Type
}

func (n *coalesceNode) typ() Type    { return n.t }
func (n *coalesceNode) kids() []node { return n.args }
func (n *coalesceNode) eval(r Row) (any, error) {
	for _, a := range n.args {
		v, err := a.eval(r)
		if err != nil || v != nil {
			return v, err
		}
	}
	return nil, nil
}
func (n *coalesceNode) sql(b *strings.Builder) {
	(&funcNode{name: "COALESCE", args: n.args}).sql(b)
}

// leftmostLocation is the smallest location in n's parse tree: where
// Postgres' exprLocation puts an expression (an operator or a cast
// reports its leftmost argument's position).
func leftmostLocation(n *pg.Node) (int32, bool) {
	best, found := int32(0), false
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Name() == "location" && fd.Kind() == protoreflect.Int32Kind:
				if l := int32(v.Int()); l >= 0 && (!found || l < best) {
					best, found = l, true
				}
			case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	if n != nil {
		walk(n.ProtoReflect())
	}
	return best, found
}
