package where

import (
	"strconv"
	"strings"
)

// ViewParams tells the SQL renderers how to render subquery literals.
// Dependency d is rendered as its live subquery when views is nil or
// views[d] is 0; otherwise against its view passed as parameters: one
// text array per column (View.Arrays), numbered $views[d],
// $views[d]+1, …:
//
//	"x" = ANY ($k::text[]::int4[])
//	("a", "b") IN (SELECT * FROM unnest($k::text[]::int4[], $k+1::text[]::text[]))
type ViewParams []int

func (v ViewParams) param(d int) int {
	if d < len(v) {
		return v[d]
	}
	return 0
}

// SQL renders the clause with every subquery in canonical form,
// `("a") IN (SELECT "c" FROM "schema"."table" WHERE …)`, and the ordinary
// parts normalised as Expr.SQL does. It parses back to the same plan.
func (p *Plan) SQL() string {
	return p.WhereSQL(nil)
}

// WhereSQL renders the clause with its original AND/OR/NOT structure,
// subquery literals rendered as views says.
func (p *Plan) WhereSQL(views ViewParams) string {
	var b strings.Builder
	p.treeSQL(&b, p.root, views)
	return b.String()
}

func (p *Plan) treeSQL(b *strings.Builder, t *boolTree, views ViewParams) {
	switch t.op {
	case opLit:
		p.litSQL(b, t.lit, views)
		return
	case opNot:
		b.WriteString("(NOT ")
		p.treeSQL(b, t.args[0], views)
		b.WriteByte(')')
		return
	}
	op := " AND "
	if t.op == opOr {
		op = " OR "
	}
	b.WriteByte('(')
	for i, a := range t.args {
		if i > 0 {
			b.WriteString(op)
		}
		p.treeSQL(b, a, views)
	}
	b.WriteByte(')')
}

// litSQL renders a literal without polarity.
func (p *Plan) litSQL(b *strings.Builder, l *literal, views ViewParams) {
	if l.dep < 0 {
		l.expr.sql(b)
		return
	}
	dep := p.Deps[l.dep]
	k := views.param(l.dep)
	if k > 0 && len(l.cols) == 1 {
		b.WriteString("(" + quoteIdent(l.cols[0].Name) + " = ANY (" + arrayParam(k, dep.Types[0]) + "))")
		return
	}
	b.WriteString("((")
	for i, c := range l.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(") IN (")
	if k > 0 {
		b.WriteString("SELECT * FROM unnest(")
		for i, t := range dep.Types {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(arrayParam(k+i, t))
		}
		b.WriteString(")")
	} else {
		b.WriteString(dep.SQL())
	}
	b.WriteString("))")
}

// arrayParam renders parameter $k (a text array) as an array of t.
func arrayParam(k int, t Type) string {
	return "$" + strconv.Itoa(k) + "::text[]::" + t.arrayOf().sqlName()
}

// posSQL renders position q's literal with its polarity.
func (p *Plan) posSQL(b *strings.Builder, q int, views ViewParams) {
	pos := p.Positions[q]
	if pos.Negated {
		b.WriteString("(NOT ")
	}
	p.litSQL(b, pos.lit, views)
	if pos.Negated {
		b.WriteByte(')')
	}
}

// DisjunctSQL renders disjunct i: the AND of its literals with their
// polarity (NOT (…) for negated ones).
func (p *Plan) DisjunctSQL(i int, views ViewParams) string {
	var b strings.Builder
	b.WriteByte('(')
	for j, q := range p.Disjuncts[i] {
		if j > 0 {
			b.WriteString(" AND ")
		}
		p.posSQL(&b, q, views)
	}
	b.WriteByte(')')
	return b.String()
}

// ConditionSQL renders position q's active condition as a boolean that is
// never NULL: COALESCE(<literal with polarity>, false), so that it equals
// ActiveConditions' entry (NULL counts as false after NOT is applied).
func (p *Plan) ConditionSQL(q int, views ViewParams) string {
	var b strings.Builder
	b.WriteString("COALESCE(")
	p.posSQL(&b, q, views)
	b.WriteString(", false)")
	return b.String()
}

// TagSQL renders disjunct i's tag as a text expression equal to Tags'
// entry: slots joined by '/', a subquery slot being
// md5('<prefix>' || CASE WHEN "x" IS NULL THEN 'NULL' ELSE 'v:' || concat("x") END)
// (concat applies the column type's output function, as the row's text
// has it; a cast to text would differ for bool and char(n)).
func (p *Plan) TagSQL(i int, prefix string) string {
	in := map[int]bool{}
	for _, q := range p.Disjuncts[i] {
		in[q] = true
	}
	var parts sqlConcat
	for q, pos := range p.Positions {
		if q > 0 {
			parts.lit("/")
		}
		switch {
		case !in[q]:
		case !pos.IsSubquery():
			parts.lit("1")
		case len(pos.Columns) == 1:
			var h sqlConcat
			h.lit(prefix)
			c := quoteIdent(pos.Columns[0])
			h.expr("CASE WHEN " + c + " IS NULL THEN 'NULL' ELSE 'v:' || concat(" + c + ") END")
			parts.expr("md5(" + h.String() + ")")
		default:
			// SlotHash's two inputs for a row comparison: texts
			// length-prefixed when one holds ':'.
			var h, long sqlConcat
			var colon []string
			h.lit(prefix)
			long.lit(prefix)
			for _, name := range pos.Columns {
				c := quoteIdent(name)
				h.lit(name + ":")
				h.expr("CASE WHEN " + c + " IS NULL THEN 'NULL' ELSE 'v:' || concat(" + c + ") END")
				long.lit(name + ":")
				long.expr("CASE WHEN " + c + " IS NULL THEN 'NULL' ELSE 'L' || octet_length(concat(" + c + ")) || ':' || concat(" + c + ") END")
				colon = append(colon, "strpos(concat("+c+"), ':') > 0")
			}
			parts.expr("md5(CASE WHEN " + strings.Join(colon, " OR ") + " THEN " + long.String() + " ELSE " + h.String() + " END)")
		}
	}
	return parts.String()
}

// sqlConcat builds a text concatenation, merging adjacent literals.
type sqlConcat struct {
	parts []string
	text  strings.Builder
	open  bool
}

func (c *sqlConcat) lit(s string) {
	c.text.WriteString(s)
	c.open = true
}

func (c *sqlConcat) flush() {
	if c.open {
		c.parts = append(c.parts, quoteLiteral(c.text.String())+"::text")
		c.text.Reset()
		c.open = false
	}
}

func (c *sqlConcat) expr(s string) {
	c.flush()
	c.parts = append(c.parts, s)
}

func (c *sqlConcat) String() string {
	c.flush()
	switch len(c.parts) {
	case 0:
		return "''::text"
	case 1:
		return c.parts[0]
	}
	return "(" + strings.Join(c.parts, " || ") + ")"
}

// MoveInAfterDeps tells, per dependency, whether MoveInWhereSQL(d, …)
// renders it against the views after (those of d's disjuncts): only
// their parameters may be passed, as Postgres refuses a parameter the
// query does not use.
func (p *Plan) MoveInAfterDeps(d int) []bool {
	out := make([]bool, len(p.Deps))
	for _, i := range p.DepDisjuncts[d] {
		for _, q := range p.Disjuncts[i] {
			if dep := p.Positions[q].Dep; dep >= 0 {
				out[dep] = true
			}
		}
	}
	return out
}

// MoveInWhereSQL renders the WHERE of a move-in query for dependency d:
// the rows in the shape with the views after the move that were not in
// it with the views before (§7.4 of subqueries.md). Only d's disjuncts
// are tested against after (the others are the same before and after),
// and the before side is wrapped in COALESCE so that a row whose clause
// was NULL (not in the shape) before counts as new.
func (p *Plan) MoveInWhereSQL(d int, before, after ViewParams) string {
	var in, was []string
	for _, i := range p.DepDisjuncts[d] {
		in = append(in, p.DisjunctSQL(i, after))
	}
	for i := range p.Disjuncts {
		was = append(was, p.DisjunctSQL(i, before))
	}
	if len(in) == 0 {
		return "false"
	}
	return "((" + strings.Join(in, " OR ") + ") AND NOT COALESCE((" + strings.Join(was, " OR ") + "), false))"
}
