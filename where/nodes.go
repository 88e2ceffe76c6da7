package where

import (
	"strconv"
	"strings"
)

// node is a type-checked expression.
type node interface {
	typ() Type
	eval(r Row) (any, error) // nil result = SQL NULL
	sql(b *strings.Builder)
	kids() []node // operands
}

// walk calls f once for every distinct node of the tree rooted at n
// (nodes may be shared, e.g. BETWEEN's left operand).
func walk(n node, f func(node)) {
	seen := map[node]bool{}
	var rec func(node)
	rec = func(x node) {
		if seen[x] {
			return
		}
		seen[x] = true
		f(x)
		for _, k := range x.kids() {
			rec(k)
		}
	}
	rec(n)
}

// maxExpandedSize bounds the size of a clause with shared operands
// expanded (what SQL() renders and Matches evaluates).
const maxExpandedSize = 20000

// expandedSize counts nodes as if shared operands were copied.
func expandedSize(n node) int {
	memo := map[node]int{}
	var rec func(node) int
	rec = func(x node) int {
		if s, ok := memo[x]; ok {
			return s
		}
		s := 1
		for _, k := range x.kids() {
			s = min(s+rec(k), maxExpandedSize+1)
		}
		memo[x] = s
		return s
	}
	return rec(n)
}

// constNode is a literal (or a folded constant). raw holds the literal text
// while the type is still unknown.
type constNode struct {
	t     Type
	v     any
	raw   string
	null  bool
	loc   int32
	param bool
}

func (c *constNode) typ() Type             { return c.t }
func (c *constNode) eval(Row) (any, error) { return c.v, nil }
func (c *constNode) kids() []node          { return nil }
func (c *constNode) isNull() bool          { return c.null }
func (c *constNode) sql(b *strings.Builder) {
	switch {
	case c.null && (c.t.isUnknown() || c.t.Enum):
		b.WriteString("NULL")
	case c.null:
		b.WriteString("NULL::" + c.t.sqlName())
	case c.t.isUnknown():
		b.WriteString(quoteLiteral(c.raw) + "::text")
	case c.t == tBool:
		b.WriteString(strconv.FormatBool(c.v.(bool)))
	case c.t.Enum:
		b.WriteString(quoteLiteral(outputValue(c.v, c.t)))
	default:
		b.WriteString(quoteLiteral(outputValue(c.v, c.t)) + "::" + c.t.sqlName())
	}
}

// colNode reads and parses a column of the row.
type colNode struct {
	name string
	t    Type
}

func (c *colNode) typ() Type    { return c.t }
func (c *colNode) kids() []node { return nil }
func (c *colNode) sql(b *strings.Builder) {
	b.WriteString(quoteIdent(c.name))
}
func (c *colNode) eval(r Row) (any, error) {
	s, ok := r.Value(c.name)
	if !ok {
		return nil, nil
	}
	v, err := parseValue(s, c.t)
	if err != nil {
		return nil, errorf("column %q: %s", c.name, err.Error())
	}
	return v, nil
}

// castNode converts its argument's value (explicit or implicit cast).
type castNode struct {
	arg node
	t   Type
	fn  func(any) (any, error)
}

func (c *castNode) typ() Type    { return c.t }
func (c *castNode) kids() []node { return []node{c.arg} }
func (c *castNode) sql(b *strings.Builder) {
	b.WriteByte('(')
	c.arg.sql(b)
	b.WriteString(")::" + c.t.sqlName())
}
func (c *castNode) eval(r Row) (any, error) {
	v, err := c.arg.eval(r)
	if err != nil || v == nil {
		return nil, err
	}
	if v, err = c.fn(v); err != nil {
		return nil, err
	}
	return v, charge(r, v)
}

// funcNode applies a function or operator to its arguments. Strict
// functions return NULL for any NULL argument without being called.
type funcNode struct {
	name   string // SQL operator or function name
	infix  bool   // render as (a op b) / (op a)
	args   []node
	t      Type
	strict bool
	fn     func([]any) (any, error)
}

func (f *funcNode) typ() Type    { return f.t }
func (f *funcNode) kids() []node { return f.args }
func (f *funcNode) eval(r Row) (any, error) {
	vals := make([]any, len(f.args))
	for i, a := range f.args {
		v, err := a.eval(r)
		if err != nil {
			return nil, err
		}
		if v == nil && f.strict {
			return nil, nil
		}
		vals[i] = v
	}
	v, err := f.fn(vals)
	if err != nil {
		return nil, err
	}
	return v, charge(r, v)
}
func (f *funcNode) sql(b *strings.Builder) {
	switch {
	case f.infix && len(f.args) == 1:
		b.WriteString("(" + f.name + " ")
		f.args[0].sql(b)
		b.WriteByte(')')
	case f.infix:
		b.WriteByte('(')
		f.args[0].sql(b)
		b.WriteString(" " + f.name + " ")
		f.args[1].sql(b)
		b.WriteByte(')')
	default:
		b.WriteString(f.name + "(")
		for i, a := range f.args {
			if i > 0 {
				b.WriteString(", ")
			}
			a.sql(b)
		}
		b.WriteByte(')')
	}
}

// quoteIdent double-quotes an identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral single-quotes a string literal (standard_conforming_strings).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
