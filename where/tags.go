package where

import (
	"crypto/md5"
	"encoding/hex"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Value is a tuple of column values as Postgres text, nil for NULL: what a
// dependency yields for one inner row, or the left side of IN for one
// outer row. Single-column subqueries have one-element values.
type Value []*string

// ValueKey identifies a Value under SQL equality of its columns' types
// (1.50 = 1.5 for numeric, -0 = 0 for floats, trailing blanks of
// char(n), intervals by their span): two values are equal exactly when
// their keys are. Each column's canonical key is length-prefixed, and a
// NULL column is "N", so keys of different tuples never collide.
type ValueKey string

// keyable reports whether values of type t have a canonical key, which
// the view's set membership needs.
func keyable(t Type) bool {
	if t.Array {
		return false
	}
	if kindOf(t) != 0 {
		return true
	}
	switch t.Name {
	case "float4", "float8", "time", "timestamp", "timestamptz", "bpchar", "bytea", "interval":
		return true
	}
	return false
}

// columnKey is the canonical key of one non-NULL value of type t.
func columnKey(t Type, s string) (string, error) {
	v, err := parseValue(s, t)
	if err != nil {
		return "", err
	}
	if k := kindOf(t); k != 0 {
		return keyOf(k, v), nil
	}
	switch t.Name {
	case "float4", "float8":
		f := v.(float64)
		switch {
		case math.IsNaN(f):
			return "NaN", nil
		case f == 0:
			return "0", nil
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case "time", "timestamp", "timestamptz":
		return strconv.FormatInt(v.(int64), 10), nil
	case "bpchar":
		return strings.TrimRight(v.(string), " "), nil
	case "bytea":
		return v.(string), nil
	case "interval":
		return v.(interval).span().String(), nil
	}
	return "", errorf("values of type %s have no key", t)
}

// keyedValue is a Value with its columns' keys ("" and null for NULLs).
type keyedValue struct {
	val  Value
	keys []string
	key  ValueKey
	null bool // some column is NULL
}

// keyValue computes the keys of val, a tuple of types.
func keyValue(types []Type, val Value) (keyedValue, error) {
	if len(val) != len(types) {
		return keyedValue{}, errorf("value has %d columns, want %d", len(val), len(types))
	}
	kv := keyedValue{val: val, keys: make([]string, len(val))}
	var b strings.Builder
	for i, s := range val {
		if s == nil {
			kv.null = true
			b.WriteString("N")
			continue
		}
		k, err := columnKey(types[i], *s)
		if err != nil {
			return keyedValue{}, err
		}
		kv.keys[i] = k
		b.WriteString(strconv.Itoa(len(k)) + ":" + k)
	}
	kv.key = ValueKey(b.String())
	return kv, nil
}

// Key returns the ValueKey of val, a tuple of types.
func Key(types []Type, val Value) (ValueKey, error) {
	kv, err := keyValue(types, val)
	return kv.key, err
}

// View is the set of values a dependency yields for the outer shape,
// with SQL's IN semantics: a NULL is never a member, but a value with a
// NULL column in the set makes a non-member's IN unknown instead of
// false (as `x NOT IN (SELECT …)` does in Postgres).
type View struct {
	types []Type
	full  map[ValueKey]keyedValue // values without NULLs
	nulls map[ValueKey]keyedValue // values with a NULL column
}

// NewView returns an empty view of values of the given column types.
func NewView(types []Type) *View {
	return &View{types: types, full: map[ValueKey]keyedValue{}, nulls: map[ValueKey]keyedValue{}}
}

// Add puts val into the view (a no-op if an equal value is there).
func (v *View) Add(val Value) error {
	kv, err := keyValue(v.types, val)
	if err != nil {
		return err
	}
	if kv.null {
		v.nulls[kv.key] = kv
	} else {
		v.full[kv.key] = kv
	}
	return nil
}

// Remove takes val out of the view (a no-op if it is not there).
func (v *View) Remove(val Value) error {
	kv, err := keyValue(v.types, val)
	if err != nil {
		return err
	}
	delete(v.full, kv.key)
	delete(v.nulls, kv.key)
	return nil
}

// Len returns the number of distinct values, those with NULLs included.
func (v *View) Len() int { return len(v.full) + len(v.nulls) }

// HasNull reports whether some value of the view has a NULL column: then
// `x NOT IN (view)` of a one-column view is never true.
func (v *View) HasNull() bool { return len(v.nulls) > 0 }

// Truth is the result of an SQL condition: true, false or unknown (NULL).
type Truth int8

// Truth values.
const (
	False Truth = iota
	True
	Unknown
)

// In evaluates `val IN (view)` with SQL semantics: true if an equal value
// is in the view; otherwise unknown if some value of the view could equal
// val but for NULLs (on either side); otherwise false (an empty view gives
// false even for a NULL val).
func (v *View) In(val Value) (Truth, error) {
	kv, err := keyValue(v.types, val)
	if err != nil {
		return False, err
	}
	if !kv.null {
		if _, ok := v.full[kv.key]; ok {
			return True, nil
		}
		for _, e := range v.nulls {
			if compatible(kv, e) {
				return Unknown, nil
			}
		}
		return False, nil
	}
	for _, set := range []map[ValueKey]keyedValue{v.full, v.nulls} {
		for _, e := range set {
			if compatible(kv, e) {
				return Unknown, nil
			}
		}
	}
	return False, nil
}

// compatible reports whether a and b agree on every column where neither
// is NULL.
func compatible(a, b keyedValue) bool {
	for i := range a.keys {
		if a.val[i] != nil && b.val[i] != nil && a.keys[i] != b.keys[i] {
			return false
		}
	}
	return true
}

// Values returns the view's values ordered by key.
func (v *View) Values() []Value {
	all := make([]keyedValue, 0, v.Len())
	for _, set := range []map[ValueKey]keyedValue{v.full, v.nulls} {
		for _, e := range set {
			all = append(all, e)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].key < all[j].key })
	out := make([]Value, len(all))
	for i, e := range all {
		out[i] = e.val
	}
	return out
}

// Arrays returns the view column by column (one text array per column,
// in the order of Values), the parameters of a subquery literal rendered
// with ViewParams.
func (v *View) Arrays() [][]*string {
	vals := v.Values()
	out := make([][]*string, len(v.types))
	for i := range out {
		out[i] = make([]*string, len(vals))
		for j, val := range vals {
			out[i][j] = val[i]
		}
	}
	return out
}

// SlotHash is a subquery position's tag slot for a value: the lowercase
// hex md5 of prefix (stack id and shape handle) followed by the value's
// text. For one column that is "v:" + text, or "NULL"; for a row
// comparison the parts are column name + ":" + that, concatenated.
//
// The hash is of the text, so equal values with different texts (numeric
// 1.0 and 1.00, float -0 and 0, char(n) of different n, interval 1 day
// and 24:00:00) get different slots: a pattern hashed from a dependency
// value's text matches only the outer rows whose text is the same.
//
// Electric's row comparison input is ambiguous when a text holds ':'
// (("1b:v:2", "3") and ("1", "2b:v:3") both give "a:v:1b:v:2b:v:3"), and
// one value's move would match the other's rows; so a value of a row
// comparison with ':' in some part writes each text as "L" + its length
// in bytes + ":" + text instead ("a:L6:1b:v:2b:L1:3"). The others keep
// Electric's input. TagSQL computes the same.
func SlotHash(prefix string, cols []string, val Value) string {
	long := false
	for _, s := range val {
		long = long || len(cols) > 1 && s != nil && strings.Contains(*s, ":")
	}
	var b strings.Builder
	b.WriteString(prefix)
	for i, s := range val {
		if len(cols) > 1 {
			b.WriteString(cols[i] + ":")
		}
		switch {
		case s == nil:
			b.WriteString("NULL")
		case long:
			b.WriteString("L" + strconv.Itoa(len(*s)) + ":" + *s)
		default:
			b.WriteString("v:" + *s)
		}
	}
	sum := md5.Sum([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// leftValue reads a subquery position's left-side columns from r.
func (p Position) leftValue(r Row) Value {
	v := make(Value, len(p.Columns))
	for i, c := range p.Columns {
		if s, ok := r.Value(c); ok {
			v[i] = &s
		}
	}
	return v
}

// Tags returns a row's tags: one per disjunct, each len(Positions) slots
// joined by "/": empty for a position outside the disjunct, "1" for an
// ordinary literal, the SlotHash of the row's value for a subquery. Tags
// depend on the row only, never on the views.
func (p *Plan) Tags(r Row, prefix string) []string {
	slots := make([]string, len(p.Positions))
	for i, pos := range p.Positions {
		if pos.IsSubquery() {
			slots[i] = SlotHash(prefix, pos.Columns, pos.leftValue(r))
		} else {
			slots[i] = "1"
		}
	}
	tags := make([]string, len(p.Disjuncts))
	for i, ps := range p.Disjuncts {
		tag := make([]string, len(p.Positions))
		for _, q := range ps {
			tag[q] = slots[q]
		}
		tags[i] = strings.Join(tag, "/")
	}
	return tags
}

// ActiveConditions returns, per position, whether its literal with its
// polarity applied is TRUE for r, given the views (one per dependency):
// a subquery literal tests membership in its view, an ordinary one is
// evaluated as Matches would. NULL counts as false after the polarity is
// applied, so `NOT (x IN …)` of a NULL x is false, as in SQL; a row is
// in the shape exactly when some disjunct has all its positions true.
// An evaluation error makes its position false and is returned (the
// first one) with the result.
func (p *Plan) ActiveConditions(r Row, views []*View) ([]bool, error) {
	if len(views) != len(p.Deps) {
		return nil, errorf("%d views for %d dependencies", len(views), len(p.Deps))
	}
	br := &budgetRow{Row: r, left: EvalBudget}
	memo := map[*literal]Truth{}
	var firstErr error
	out := make([]bool, len(p.Positions))
	for i, pos := range p.Positions {
		t, ok := memo[pos.lit]
		if !ok {
			var err error
			t, err = pos.eval(br, views)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			memo[pos.lit] = t
		}
		if pos.Negated {
			out[i] = t == False
		} else {
			out[i] = t == True
		}
	}
	return out, firstErr
}

// eval computes a position's literal (without its polarity); an error
// gives Unknown.
func (pos Position) eval(r *budgetRow, views []*View) (Truth, error) {
	if pos.IsSubquery() {
		t, err := views[pos.Dep].In(pos.leftValue(r))
		if err != nil {
			return Unknown, err
		}
		return t, nil
	}
	v, err := pos.lit.expr.eval(r)
	switch {
	case err != nil || v == nil:
		return Unknown, err
	case v.(bool):
		return True, nil
	}
	return False, nil
}

// Includes reports whether a row with these active conditions is in the
// shape: some disjunct has every position true.
func (p *Plan) Includes(conds []bool) bool {
	for _, ps := range p.Disjuncts {
		all := true
		for _, q := range ps {
			all = all && conds[q]
		}
		if all {
			return true
		}
	}
	return false
}

// RowMeta is a row's subquery metadata.
type RowMeta struct {
	Tags             []string
	ActiveConditions []bool
	Included         bool // the row is in the shape
}

// Meta computes a row's tags, active conditions and membership (see Tags
// and ActiveConditions).
func (p *Plan) Meta(r Row, views []*View, prefix string) (RowMeta, error) {
	conds, err := p.ActiveConditions(r, views)
	if conds == nil {
		return RowMeta{}, err
	}
	return RowMeta{Tags: p.Tags(r, prefix), ActiveConditions: conds, Included: p.Includes(conds)}, err
}
