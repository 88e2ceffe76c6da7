// Package shape defines shapes (a table, a where clause, some columns) and
// turns replicated row changes into the shape log's JSON messages.
package shape

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/where"
)

// Replica modes.
const (
	ReplicaDefault = "default"
	ReplicaFull    = "full"
)

// Log modes.
const (
	LogFull        = "full"
	LogChangesOnly = "changes_only"
)

// Definition is what a client asks for.
type Definition struct {
	Schema  string            `json:"schema"`
	Table   string            `json:"table"`
	Where   string            `json:"where,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
	Columns []string          `json:"columns,omitempty"` // nil selects every column
	Replica string            `json:"replica"`
	Log     string            `json:"log"`
	// Queryable is queryable_columns: the only columns the shape may sync
	// and its subsets may filter or order on (nil: every column). Without
	// Columns, the shape syncs these columns. The shape's own where clause
	// is set by whoever set this list and is not limited by it, as in
	// Electric.
	Queryable []string `json:"queryable_columns,omitempty"`
	// Subqueries marks a where clause with subqueries (NewWithSubqueries;
	// experimental, issue 16).
	Subqueries bool `json:"subqueries,omitempty"`
}

// FieldError is a problem with one request parameter.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Shape is a validated, compiled definition bound to a table's schema.
// Shapes are kept by the hundred thousand, so everything derived from the
// table alone lives in a tableInfo shared by every shape of that table
// version, and the where clause of a restored shape is compiled on first
// use (Filter).
type Shape struct {
	Def   Definition
	Table *volt.Table
	// Selected holds the indexes (into Table.Columns) of the projected
	// columns, in table order.
	Selected []int
	// KeyCols holds the indexes of the row identity: the primary key in key
	// order, or every column sorted by name when the table has none.
	KeyCols []int
	// Key identifies the definition: equal keys are the same shape.
	Key string

	t        *tableInfo
	selected []bool

	compile   sync.Once
	filter    *where.Expr // nil when the shape has no where clause
	filterErr error
	plan      *where.Plan // a where clause with subqueries (NewWithSubqueries)
	// tagPrefix is the tag prefix of a shape with subqueries, once a
	// cache has given it a handle (subset rows need it).
	tagPrefix atomic.Pointer[string]
}

// tableInfo is what all shapes of one table version share.
type tableInfo struct {
	table       *volt.Table
	colIndex    map[string]int // column name → index in table.Columns
	keyCols     []int
	allSelected []int  // every non-generated column
	allMask     []bool // the same as a mask
	keyPrefix   string // `"schema"."table"` as it starts every key
	relation    []byte // JSON `["schema","table"]`
	whereCols   []where.Column
}

// Registry is what the shapes of one cache share: the table state of each
// table version, interned, and the clock that makes handles unique. Its
// zero value is ready to use; it is safe for concurrent use.
type Registry struct {
	// tables interns tableInfo by the table's definition. It only grows
	// with table versions (DDL), not with shapes.
	tables sync.Map // string → *tableInfo
	// byPtr short-cuts interning for the canonical *volt.Table of each
	// version; it holds no other pointers, so tables built per request do
	// not accumulate.
	byPtr sync.Map // *volt.Table → *tableInfo
	// lastHandle is the creation time (µs) in the latest handle.
	lastHandle atomic.Int64
}

// InternTable returns the canonical pointer for table's definition. Shapes
// built on it skip re-deriving the shared table state (a restart restores
// many shapes of one table).
func (r *Registry) InternTable(table *volt.Table) *volt.Table { return r.intern(table).table }

func (r *Registry) intern(table *volt.Table) *tableInfo {
	if t, ok := r.byPtr.Load(table); ok {
		return t.(*tableInfo)
	}
	fp, _ := json.Marshal(table)
	if t, ok := r.tables.Load(string(fp)); ok {
		return t.(*tableInfo)
	}
	actual, loaded := r.tables.LoadOrStore(string(fp), newTableInfo(table))
	if !loaded {
		r.byPtr.Store(table, actual)
	}
	return actual.(*tableInfo)
}

// newTableInfo derives the state shapes of table share.
func newTableInfo(table *volt.Table) *tableInfo {
	t := &tableInfo{table: table, colIndex: make(map[string]int, len(table.Columns))}
	for i, c := range table.Columns {
		t.colIndex[c.Name] = i
		t.whereCols = append(t.whereCols, where.Column{Name: c.Name, Type: c.TypeName, Dims: c.Dims, IsEnum: c.IsEnum})
	}
	t.keyCols = keyColumns(table, t.colIndex)
	t.allMask = make([]bool, len(table.Columns))
	for i, c := range table.Columns {
		if !c.Generated {
			t.allMask[i] = true
			t.allSelected = append(t.allSelected, i)
		}
	}
	t.keyPrefix = quoteKeyPart(table.Schema) + "." + quoteKeyPart(table.Name)
	t.relation = appendString(append(appendString([]byte{'['}, table.Schema), ','), table.Name)
	t.relation = append(t.relation, ']')
	return t
}

// New validates def against table and compiles it. The shape shares
// nothing with other shapes: shapes that a cache keeps are built by its
// Registry (New, Restore) or adopted by it (Own).
func New(def Definition, table *volt.Table) (*Shape, error) {
	return newShape(def, newTableInfo(table))
}

// New is New with the table state shared by every shape of r on the same
// table version.
func (r *Registry) New(def Definition, table *volt.Table) (*Shape, error) {
	return newShape(def, r.intern(table))
}

func newShape(def Definition, t *tableInfo) (*Shape, error) {
	s, err := bind(def, t)
	if err != nil {
		return nil, err
	}
	if def.Where != "" {
		f, err := where.Parse(def.Where, s.t.whereCols, def.Params)
		if err != nil {
			return nil, &FieldError{Field: "where", Message: err.Error()}
		}
		s.compile.Do(func() { s.filter = f })
	} else {
		s.compile.Do(func() {})
	}
	s.Key = s.canonicalKey()
	return s, nil
}

// Restore rebuilds a shape that New accepted earlier for the same table,
// given the Key New computed. It does not parse the where clause: that
// happens on the first call to Filter, so a restart with many shapes does
// not pay for every parse up front.
func (r *Registry) Restore(def Definition, table *volt.Table, key string) (*Shape, error) {
	s, err := bind(def, r.intern(table))
	if err != nil {
		return nil, err
	}
	s.Key = key
	return s, nil
}

// Own returns s on r's shared table state: s itself when it is already,
// else a copy with the same definition, key and compiled where clause.
func (r *Registry) Own(s *Shape) *Shape {
	t := r.intern(s.Table)
	if t == s.t {
		return s
	}
	o, err := bind(s.Def, t)
	if err != nil {
		return s // cannot happen: t describes the table s was bound to
	}
	o.Key = s.Key
	if s.plan != nil {
		o.plan = s.plan
		o.compile.Do(func() {})
		return o
	}
	f, ferr := s.Filter()
	o.compile.Do(func() { o.filter, o.filterErr = f, ferr })
	return o
}

func bind(def Definition, t *tableInfo) (*Shape, error) {
	if def.Replica == "" {
		def.Replica = ReplicaDefault
	}
	if def.Log == "" {
		def.Log = LogFull
	}
	s := &Shape{Def: def, Table: t.table, t: t, KeyCols: t.keyCols}
	if err := s.selectColumns(); err != nil {
		return nil, err
	}
	return s, nil
}

// Filter returns the compiled where clause (nil when there is none). It
// fails for a restored shape whose clause no longer compiles, and for a
// shape with subqueries (whose clause is Plan).
func (s *Shape) Filter() (*where.Expr, error) {
	if s.plan != nil {
		return nil, errHasSubqueries
	}
	s.compile.Do(func() {
		if s.Def.Where == "" {
			return
		}
		s.filter, s.filterErr = where.Parse(s.Def.Where, s.t.whereCols, s.Def.Params)
	})
	return s.filter, s.filterErr
}

// errHasSubqueries is Filter's error for a shape with subqueries.
var errHasSubqueries = errors.New("the where clause has subqueries")

func keyColumns(table *volt.Table, colIndex map[string]int) []int {
	var out []int
	if len(table.PrimaryKey) > 0 {
		for _, name := range table.PrimaryKey {
			out = append(out, colIndex[name])
		}
		return out
	}
	for i := range table.Columns {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return table.Columns[out[a]].Name < table.Columns[out[b]].Name })
	return out
}

func (s *Shape) selectColumns() error {
	if s.Def.Queryable != nil {
		if err := s.checkQueryable(); err != nil {
			return err
		}
	}
	cols := s.Def.Columns
	if cols == nil && s.Def.Queryable != nil {
		// The shape syncs exactly the queryable columns. They become the
		// definition's columns, so that a shape restored from the catalog
		// projects the same ones.
		for _, name := range s.Def.Queryable {
			if !s.Table.Columns[s.t.colIndex[name]].Generated {
				cols = append(cols, name)
			}
		}
		s.Def.Columns = cols
	}
	if cols == nil {
		s.selected, s.Selected = s.t.allMask, s.t.allSelected
		return nil
	}
	s.selected = make([]bool, len(s.Table.Columns))
	{
		var missing, hidden []string
		for _, name := range cols {
			i, ok := s.t.colIndex[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			if s.Table.Columns[i].Generated {
				return &FieldError{"columns", "The following columns are generated and cannot be included in the shape: " + name}
			}
			if s.Def.Queryable != nil && !slices.Contains(s.Def.Queryable, name) {
				hidden = append(hidden, name)
			}
			s.selected[i] = true
		}
		if len(missing) > 0 {
			return &FieldError{"columns", "The following columns are not found on the table: " + strings.Join(missing, ", ")}
		}
		if len(hidden) > 0 {
			return &FieldError{"columns", "The following columns are not in queryable_columns: " + strings.Join(hidden, ", ")}
		}
		var noKey []string
		for _, k := range s.KeyCols {
			if !s.selected[k] {
				noKey = append(noKey, s.Table.Columns[k].Name)
			}
		}
		if len(noKey) > 0 {
			return &FieldError{"columns", "The list of columns must include all primary key columns, missing: " + strings.Join(noKey, ", ")}
		}
	}
	for i, sel := range s.selected {
		if sel {
			s.Selected = append(s.Selected, i)
		}
	}
	return nil
}

// checkQueryable validates queryable_columns: columns of the table that
// include the row identity.
func (s *Shape) checkQueryable() error {
	var missing, noKey []string
	for _, name := range s.Def.Queryable {
		if _, ok := s.t.colIndex[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return &FieldError{"queryable_columns", "The following columns are not found on the table: " + strings.Join(missing, ", ")}
	}
	for _, k := range s.KeyCols {
		if name := s.Table.Columns[k].Name; !slices.Contains(s.Def.Queryable, name) {
			noKey = append(noKey, name)
		}
	}
	if len(noKey) > 0 {
		return &FieldError{"queryable_columns", "The list of queryable columns must include all primary key columns, missing: " + strings.Join(noKey, ", ")}
	}
	return nil
}

// queryCols returns the columns a where clause may refer to: the table's,
// or only those in allowed when it is not nil.
func (s *Shape) queryCols(allowed []string) []where.Column {
	if allowed == nil {
		return s.t.whereCols
	}
	out := make([]where.Column, 0, len(allowed))
	for _, c := range s.t.whereCols {
		if slices.Contains(allowed, c.Name) {
			out = append(out, c)
		}
	}
	return out
}

func (s *Shape) canonicalKey() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d|%s|%s|", s.Table.OID, s.Table.Schema, s.Table.Name)
	for _, i := range s.Selected {
		b.WriteString(strconv.Quote(s.Table.Columns[i].Name))
	}
	b.WriteString("|")
	if s.filter != nil {
		b.WriteString(s.filter.SQL())
	}
	if s.plan != nil {
		b.WriteString("sq:" + s.plan.SQL())
	}
	fmt.Fprintf(&b, "|%s|%s|%v", s.Def.Replica, s.Def.Log, s.Def.Columns != nil)
	if s.Def.Queryable != nil {
		q := slices.Clone(s.Def.Queryable)
		slices.Sort(q)
		b.WriteString("|q:")
		for _, name := range slices.Compact(q) {
			b.WriteString(strconv.Quote(name))
		}
	}
	return b.String()
}

// NewHandle returns a fresh handle for s: a hash of its key and the
// creation time in microseconds. The time part grows with every handle r
// hands out (two shapes created in one microsecond, or a clock stepped
// back, get distinct times), so r never gives a handle twice.
func (r *Registry) NewHandle(s *Shape) string {
	sum := sha256.Sum256([]byte(s.Key))
	now := time.Now().UnixMicro()
	for {
		prev := r.lastHandle.Load()
		if now <= prev {
			now = prev + 1
		}
		if r.lastHandle.CompareAndSwap(prev, now) {
			break
		}
	}
	return strconv.FormatUint(uint64(binary.BigEndian.Uint32(sum[:4])), 10) + "-" + strconv.FormatInt(now, 10)
}

// Schema returns the electric-schema header value for the selected columns.
func (s *Shape) Schema() string {
	m := make(map[string]map[string]any, len(s.Selected))
	for _, i := range s.Selected {
		m[s.Table.Columns[i].Name] = columnSchema(s.Table.Columns[i])
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func columnSchema(c volt.Column) map[string]any {
	out := map[string]any{"type": c.TypeName}
	if c.Dims > 0 {
		out["dims"] = c.Dims
	}
	if c.PKIndex >= 0 {
		out["pk_index"] = c.PKIndex
	}
	if c.NotNull {
		out["not_null"] = true
	}
	if c.TypeMod < 0 {
		return out
	}
	mod := int(c.TypeMod)
	switch c.TypeName {
	case "varchar":
		out["max_length"] = mod - 4
	case "bpchar":
		out["length"] = mod - 4
	case "bit", "varbit":
		out["length"] = mod
	case "time", "timetz", "timestamp", "timestamptz":
		out["precision"] = mod
	case "numeric":
		out["precision"] = ((mod - 4) >> 16) & 0xffff
		out["scale"] = (mod - 4) & 0xffff
	case "interval":
		if p := mod & 0xffff; p != 0xffff {
			out["precision"] = p
		}
		if f := intervalFields((mod >> 16) & 0x7fff); f != "" {
			out["fields"] = f
		}
	default:
		out["type_mod"] = mod
	}
	return out
}

// intervalFields names an interval's field restriction (Postgres' INTERVAL_MASK bits).
func intervalFields(mask int) string {
	const (
		year, month, day, hour, minute, second = 1 << 2, 1 << 1, 1 << 3, 1 << 10, 1 << 11, 1 << 12
	)
	names := map[int]string{
		year: "YEAR", month: "MONTH", day: "DAY", hour: "HOUR", minute: "MINUTE", second: "SECOND",
		year | month: "YEAR TO MONTH", day | hour: "DAY TO HOUR", day | hour | minute: "DAY TO MINUTE",
		day | hour | minute | second: "DAY TO SECOND", hour | minute: "HOUR TO MINUTE",
		hour | minute | second: "HOUR TO SECOND", minute | second: "MINUTE TO SECOND",
	}
	return names[mask]
}

// SelectedNames returns the projected column names in table order.
func (s *Shape) SelectedNames() []string {
	out := make([]string, len(s.Selected))
	for k, i := range s.Selected {
		out[k] = s.Table.Columns[i].Name
	}
	return out
}

// quoteKeyPart writes a schema or table name as it appears in keys.
func quoteKeyPart(s string) string {
	s = strings.ReplaceAll(s, "/", "//")
	s = strings.ReplaceAll(s, ".", "..")
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
