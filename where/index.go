package where

import (
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// KeyKind is a family of column types whose "=" is exactly equality of a
// canonical key computed from the value. Terms carry it so that a row's
// value and a clause's constant are keyed the same way (and so that two
// shapes that saw a column with different types never share keys).
//
// Only types where that is certain are indexable. Text equality assumes a
// deterministic collation, as Matches itself does. bpchar (padding),
// floats (-0 = 0, NaN), timestamps, time, interval, bytea, jsonb and
// arrays are not indexed.
type KeyKind uint8

// Key kinds. The shape catalog stores them by number: never renumber,
// only append.
const (
	KeyInt     KeyKind = iota + 1 // int2, int4, int8, compared across widths by value
	KeyNumeric                    // numeric, trailing fractional zeros dropped (1.50 = 1.5)
	KeyText                       // text, varchar and enum labels, byte for byte
	KeyUUID                       // uuid in canonical lowercase form
	KeyBool                       // bool as "t" or "f"
	KeyDate                       // date as days since 1970-01-01 (±infinity included)
)

func (k KeyKind) String() string {
	switch k {
	case KeyInt:
		return "int"
	case KeyNumeric:
		return "numeric"
	case KeyText:
		return "text"
	case KeyUUID:
		return "uuid"
	case KeyBool:
		return "bool"
	case KeyDate:
		return "date"
	}
	return "none"
}

// Term says: a row can satisfy the expression only if its value of Column
// has key Key, computed as Kind.Key(value).
type Term struct {
	Column string
	Kind   KeyKind
	Key    string
}

// IndexTerms returns terms such that every row for which Matches returns
// true has, for at least one term, term.Kind.Key(row value of term.Column)
// == term.Key. It lets a caller holding many clauses find the few that can
// match a row without evaluating the others.
//
// It understands col = const (either side; constants include parameters
// and folded casts), col IN (...), col = ANY(const array), col IS NOT
// DISTINCT FROM const, a bare boolean column, NOT of one, x IS TRUE, and
// AND (the indexable operand with the fewest terms) and OR (the union,
// when every operand is indexable) of those. The column may be wrapped in
// casts that keep its value (int2/int4/int8 among themselves, varchar and
// enum to text). A clause that can never be true (col = NULL, FALSE,
// col = ANY('{}')) is indexable with no terms.
//
// ok is false when the clause cannot be indexed: the caller must evaluate
// it against every row. Terms are sorted and unique.
func (e *Expr) IndexTerms() (terms []Term, ok bool) {
	terms, ok = indexTerms(e.root)
	if !ok {
		return nil, false
	}
	slices.SortFunc(terms, compareTerms)
	return slices.Compact(terms), true
}

func compareTerms(a, b Term) int {
	if c := strings.Compare(a.Column, b.Column); c != 0 {
		return c
	}
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	return strings.Compare(a.Key, b.Key)
}

// indexTerms is IndexTerms without sorting and deduplication.
func indexTerms(n node) ([]Term, bool) {
	switch x := n.(type) {
	case *constNode:
		// NULL and FALSE never match; TRUE matches every row.
		return nil, x.null || x.v == false
	case *colNode:
		return boolColTerm(x, "t")
	case *notNode:
		if c, ok := x.arg.(*colNode); ok {
			return boolColTerm(c, "f")
		}
	case *testNode:
		return testTerms(x)
	case *funcNode:
		if x.name == "=" && x.infix && len(x.args) == 2 {
			return eqTerms(x.args[0], x.args[1])
		}
	case *distinctNode:
		if x.not {
			return distinctTerms(x)
		}
	case *anyNode:
		if x.op == "=" && !x.all {
			return anyTerms(x)
		}
	case *boolOpNode:
		if x.and {
			return andTerms(x.args)
		}
		return orTerms(x.args)
	}
	return nil, false
}

func boolColTerm(c *colNode, key string) ([]Term, bool) {
	if c.t != tBool {
		return nil, false
	}
	return []Term{{Column: c.name, Kind: KeyBool, Key: key}}, true
}

// testTerms handles IS TRUE (true exactly when its operand is) and IS
// FALSE of a boolean column.
func testTerms(x *testNode) ([]Term, bool) {
	switch {
	case x.not:
	case x.kind == "TRUE":
		return indexTerms(x.arg)
	case x.kind == "FALSE":
		if c, ok := x.arg.(*colNode); ok {
			return boolColTerm(c, "f")
		}
	}
	return nil, false
}

// eqTerms handles a = b where one side is a (value-preserving cast of a)
// column and the other a constant of the same key kind.
func eqTerms(a, b node) ([]Term, bool) {
	if _, ok := a.(*constNode); ok {
		a, b = b, a
	}
	c, ok := b.(*constNode)
	col := keyedColumn(a)
	if !ok || col == nil || kindOf(a.typ()) != kindOf(c.t) {
		return nil, false
	}
	if c.null {
		return nil, true
	}
	k := kindOf(col.t)
	return []Term{{Column: col.name, Kind: k, Key: keyOf(k, c.v)}}, true
}

// distinctTerms handles col IS NOT DISTINCT FROM const: like col = const,
// except that a NULL constant makes it col IS NULL.
func distinctTerms(x *distinctNode) ([]Term, bool) {
	a, b := x.l, x.r
	if _, ok := a.(*constNode); ok {
		a, b = b, a
	}
	if c, ok := b.(*constNode); !ok || c.null {
		return nil, false
	}
	return eqTerms(a, b)
}

// anyTerms handles col = ANY(const array): one term per non-NULL element.
func anyTerms(x *anyNode) ([]Term, bool) {
	arr, ok := x.arr.(*constNode)
	col := keyedColumn(x.l)
	if !ok || col == nil || !arr.t.Array || kindOf(x.l.typ()) != kindOf(arr.t.elem()) {
		return nil, false
	}
	if arr.null {
		return nil, true
	}
	k := kindOf(col.t)
	var terms []Term
	for _, v := range arr.v.(*array).elems {
		if v != nil {
			terms = append(terms, Term{Column: col.name, Kind: k, Key: keyOf(k, v)})
		}
	}
	return terms, true
}

// andTerms picks the indexable operand with the fewest terms: every
// matching row matches each operand.
func andTerms(args []node) ([]Term, bool) {
	var best []Term
	found := false
	for _, a := range args {
		t, ok := indexTerms(a)
		if ok && (!found || len(t) < len(best)) {
			best, found = t, true
		}
	}
	return best, found
}

// orTerms unites the operands' terms: a matching row matches some operand.
func orTerms(args []node) ([]Term, bool) {
	var all []Term
	for _, a := range args {
		t, ok := indexTerms(a)
		if !ok {
			return nil, false
		}
		all = append(all, t...)
	}
	return all, true
}

// keyedColumn returns the column under n when n is a column wrapped in
// zero or more casts that keep the value and its key kind, else nil.
func keyedColumn(n node) *colNode {
	for {
		switch x := n.(type) {
		case *colNode:
			if kindOf(x.t) == 0 {
				return nil
			}
			return x
		case *castNode:
			if k := kindOf(x.t); k == 0 || k != kindOf(x.arg.typ()) {
				return nil
			}
			n = x.arg
		default:
			return nil
		}
	}
}

// kindOf returns the key kind of values of type t, or 0 when t is not
// indexable.
func kindOf(t Type) KeyKind {
	switch {
	case t.Array:
		return 0
	case t.Enum:
		return KeyText
	}
	switch t.Name {
	case "int2", "int4", "int8":
		return KeyInt
	case "numeric":
		return KeyNumeric
	case "text", "varchar":
		return KeyText
	case "uuid":
		return KeyUUID
	case "bool":
		return KeyBool
	case "date":
		return KeyDate
	}
	return 0
}

// keyOf returns the key of an evaluator value of kind k.
func keyOf(k KeyKind, v any) string {
	switch k {
	case KeyInt, KeyDate:
		return strconv.FormatInt(v.(int64), 10)
	case KeyNumeric:
		return normalNumeric(v.(*numeric))
	case KeyBool:
		if v.(bool) {
			return "t"
		}
		return "f"
	}
	return v.(string)
}

// normalNumeric renders n without trailing fractional zeros, so that
// numerics equal under "=" have one key.
func normalNumeric(n *numeric) string {
	if n.special != numFinite {
		return n.String()
	}
	u, scale := new(big.Int).Set(n.u), n.scale
	var q, r big.Int
	for scale > 0 {
		q.QuoRem(u, bigTen, &r)
		if r.Sign() != 0 {
			break
		}
		u.Set(&q)
		scale--
	}
	return (&numeric{u: u, scale: scale}).String()
}

// Key returns the key of a column's Postgres text value: the value as a
// Term of kind k would key it. ok is false when the text is not a valid
// value of the kind (such a row cannot satisfy a term of it). Values
// already in Postgres' canonical output form are keyed without allocating
// for the int, text and uuid kinds.
func (k KeyKind) Key(text string) (key string, ok bool) {
	switch k {
	case KeyText:
		return text, true
	case KeyInt:
		if canonicalInt(text) {
			return text, true
		}
	case KeyUUID:
		if canonicalUUID(text) {
			return text, true
		}
	case KeyBool:
		b, err := parseBool(text)
		if err != nil {
			return "", false
		}
		return keyOf(k, b), true
	case 0:
		return "", false
	}
	v, err := parseValue(text, kindType[k])
	if err != nil {
		return "", false
	}
	return keyOf(k, v), true
}

// kindType is the type a kind's values are parsed as (int8 covers every
// integer width).
var kindType = map[KeyKind]Type{KeyInt: tInt8, KeyNumeric: tNumeric, KeyUUID: tUUID, KeyDate: tDate}

// canonicalInt reports whether s is an integer as int8out writes it.
func canonicalInt(s string) bool {
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > 18 || !allDigits(d) {
		return false // more than 18 digits may overflow; let parseInt decide
	}
	return d == "0" && d == s || d[0] != '0'
}

// canonicalUUID reports whether s is a uuid as uuid_out writes it.
func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
