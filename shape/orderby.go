package shape

import (
	"errors"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/voltsync/volt/where"
)

// ParseOrderBy validates a subset's ORDER BY list: plain column references
// of the table (of allowed, when it is not nil: queryable_columns), each
// optionally ASC/DESC and NULLS FIRST/LAST. It returns the list re-rendered
// with quoted column names.
func (s *Shape) ParseOrderBy(orderBy string, allowed []string) (string, error) {
	tree, err := pg_query.Parse("SELECT 1 ORDER BY " + orderBy)
	if err != nil {
		return "", errors.New("invalid ORDER BY: " + err.Error())
	}
	if len(tree.Stmts) != 1 {
		return "", errors.New("invalid ORDER BY")
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.SortClause) == 0 {
		return "", errors.New("invalid ORDER BY")
	}
	parts := make([]string, 0, len(sel.SortClause))
	for _, n := range sel.SortClause {
		sb := n.GetSortBy()
		ref := sb.GetNode().GetColumnRef()
		if ref == nil || len(ref.Fields) != 1 || ref.Fields[0].GetString_() == nil {
			return "", errors.New("only column references are allowed in ORDER BY clauses; expressions are not allowed in ORDER BY clauses")
		}
		name := ref.Fields[0].GetString_().Sval
		if _, ok := s.t.colIndex[name]; !ok || (allowed != nil && !slices.Contains(allowed, name)) {
			return "", errors.New("unknown reference " + name)
		}
		part := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		switch sb.SortbyDir {
		case pg_query.SortByDir_SORTBY_DESC:
			part += " DESC"
		case pg_query.SortByDir_SORTBY_ASC:
			part += " ASC"
		case pg_query.SortByDir_SORTBY_USING:
			return "", errors.New("ORDER BY … USING is not allowed")
		}
		switch sb.SortbyNulls {
		case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
			part += " NULLS FIRST"
		case pg_query.SortByNulls_SORTBY_NULLS_LAST:
			part += " NULLS LAST"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", "), nil
}

// SubsetRow renders a row of a subset snapshot: an insert tagged with the
// snapshot's mark.
func (s *Shape) SubsetRow(raw [][]byte, mark int64) []byte {
	if s.plan != nil {
		return s.subqueryRow(raw, mark)
	}
	row := s.SnapshotRow(raw)
	row = row[:len(row)-2] // reopen the headers object
	row = append(row, `,"snapshot_mark":`...)
	row = appendUint(row, uint64(mark))
	return append(row, "}}"...)
}

// CompileWhere parses an extra where clause (a subset's) against the
// shape's table, or only the columns in allowed when it is not nil.
func (s *Shape) CompileWhere(clause string, params map[string]string, allowed []string) (*where.Expr, error) {
	return where.Parse(clause, s.queryCols(allowed), params)
}
