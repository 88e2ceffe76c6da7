// Package where implements Electric's where-clause subset for volt: it
// parses a shape's where clause with libpg_query, type-checks it against the
// table's columns with Postgres' own resolution rules (implicit casts,
// operator selection, unknown-literal typing), evaluates it in Go against
// rows of Postgres text output, and renders normalised SQL for the
// snapshot query that Postgres evaluates identically.
package where

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
)

// Column describes one table column for type checking.
type Column struct {
	Name   string
	Type   string // pg_type.typname of the column, or of the element type for arrays
	Dims   int    // >0 for arrays
	IsEnum bool   // typtype = 'e'
}

func (c Column) typ() Type {
	return Type{Name: c.Type, Array: c.Dims > 0, Enum: c.IsEnum}
}

// Row gives a column's Postgres text value; ok=false means SQL NULL.
type Row interface {
	Value(col string) (text string, ok bool)
}

// MapRow is a Row backed by a map; a nil pointer (or a missing key) is NULL.
type MapRow map[string]*string

// Value implements Row.
func (m MapRow) Value(col string) (string, bool) {
	p := m[col]
	if p == nil {
		return "", false
	}
	return *p, true
}

// Expr is a parsed, type-checked where clause. It is immutable and safe
// for concurrent use.
type Expr struct {
	root node
}

// Parse parses clause (as written in ?where=), substitutes $n parameters
// from params (keys "1", "2", ...; types inferred from context) and type
// checks it against cols. The result must be boolean. Errors are *Error.
func Parse(clause string, cols []Column, params map[string]string) (*Expr, error) {
	where, err := parseWhere(clause)
	if err != nil {
		return nil, err
	}
	tr := &transformer{cols: map[string]Column{}, params: params}
	for _, c := range cols {
		tr.cols[c.Name] = c
	}
	n, err := tr.expr(where)
	if err != nil {
		return nil, err
	}
	if err := firstConstError(n); err != nil {
		return nil, err
	}
	if c, ok := n.(*constNode); ok && c.t.isUnknown() {
		if n, err = tr.coerce(n, tBool, c.loc); err != nil {
			return nil, err
		}
	}
	if n.typ() != tBool {
		return nil, errorf("WHERE clause must return a boolean")
	}
	return &Expr{root: n}, nil
}

// parseWhere wraps the clause as "SELECT 1 WHERE <clause>", parses it with
// libpg_query and returns the WHERE expression, rejecting anything that
// is not exactly one plain WHERE clause.
func parseWhere(clause string) (*pg.Node, error) {
	tree, err := pg.Parse(prefix + clause)
	if err != nil {
		var pe *pgparser.Error
		if errors.As(err, &pe) && pe.Cursorpos > 0 {
			return nil, &Error{Location: pe.Cursorpos - 1, HasLocation: true, Message: pe.Message}
		}
		return nil, errorf("%s", err.Error())
	}
	if len(tree.Stmts) != 1 {
		return nil, errorf("unescaped \";\" causing statement split")
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || sel.WhereClause == nil || !plainSelect(sel) {
		return nil, errorf("malformed query ending with SQL clauses")
	}
	return sel.WhereClause, nil
}

func plainSelect(s *pg.SelectStmt) bool {
	return len(s.TargetList) == 1 && len(s.FromClause) == 0 && len(s.DistinctClause) == 0 &&
		s.IntoClause == nil && len(s.GroupClause) == 0 && s.HavingClause == nil &&
		len(s.WindowClause) == 0 && len(s.ValuesLists) == 0 && len(s.SortClause) == 0 &&
		s.LimitOffset == nil && s.LimitCount == nil && len(s.LockingClause) == 0 &&
		s.WithClause == nil && s.Op == pg.SetOperation_SETOP_NONE && !s.GroupDistinct
}

// Matches evaluates the clause against r with SQL three-valued logic; only
// TRUE matches. An evaluation error (e.g. division by zero, a value that
// does not parse) is returned with false; callers treat it as no match,
// except one that matches ErrTooCostly: the row costs more than volt's
// bounds allow (see EvalBudget), and Postgres may well match it.
func (e *Expr) Matches(r Row) (bool, error) {
	v, err := e.root.eval(&budgetRow{Row: r, left: EvalBudget})
	if err != nil {
		return false, err
	}
	return v == true, nil
}

// SQL returns a normalised SQL boolean expression equivalent to the clause:
// columns double-quoted, every literal and parameter inlined as a typed
// literal ('v'::type, bare 'v' for enum values), every implicit cast made
// explicit and every operation parenthesised.
func (e *Expr) SQL() string {
	var b strings.Builder
	e.root.sql(&b)
	return b.String()
}

// Columns returns the referenced column names, sorted and unique.
func (e *Expr) Columns() []string {
	set := map[string]bool{}
	walk(e.root, func(n node) {
		if c, ok := n.(*colNode); ok {
			set[c.name] = true
		}
	})
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// prefix is what Parse puts in front of the clause before handing it to the
// Postgres parser; semantic error locations are reported relative to the
// user's clause, so they are node locations minus len(prefix).
const prefix = "SELECT 1 WHERE "

// Error is the error type returned by Parse (and by Matches for evaluation
// failures). When HasLocation is set, Error() renders as
// "At location N: message", mirroring Electric's where-clause errors.
type Error struct {
	Location    int
	HasLocation bool
	Message     string
	costly      bool // matches ErrTooCostly
}

// Unwrap makes an evaluation refused for its cost match ErrTooCostly.
func (e *Error) Unwrap() error {
	if e.costly {
		return ErrTooCostly
	}
	return nil
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.HasLocation {
		return fmt.Sprintf("At location %d: %s", e.Location, e.Message)
	}
	return e.Message
}

// quoted matches the values an error message quotes (with %q).
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// Redacted renders err for a log line without the values it quotes:
// evaluation errors quote the offending input, which may be a row's value
// that the log's readers must not see.
func Redacted(err error) string {
	return quoted.ReplaceAllString(err.Error(), `"…"`)
}

// errorf builds a location-less *Error.
func errorf(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

// errAt builds an *Error at an AST node location (an offset into the wrapped
// statement); negative locations produce a location-less error.
func errAt(loc int32, format string, args ...any) *Error {
	e := errorf(format, args...)
	if loc >= int32(len(prefix)) {
		e.Location = int(loc) - len(prefix)
		e.HasLocation = true
	}
	return e
}

// withLoc attaches a location to err if it is a location-less *Error;
// other errors are wrapped into an *Error at loc.
func withLoc(err error, loc int32) *Error {
	if e, ok := err.(*Error); ok {
		if e.HasLocation {
			return e
		}
		l := errAt(loc, "%s", e.Message)
		l.costly = e.costly
		return l
	}
	return errAt(loc, "%s", err.Error())
}
