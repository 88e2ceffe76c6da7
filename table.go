package volt

// Table is a table's definition as a shape needs it.
type Table struct {
	OID     uint32
	Schema  string
	Name    string
	Columns []Column // in attnum order, dropped columns excluded
	// PrimaryKey lists the primary key columns in key order; empty when the
	// table has none.
	PrimaryKey []string
}

// Column is one column of a Table.
type Column struct {
	Name     string
	TypeOID  uint32
	TypeName string // the element type's name for arrays
	Dims     int    // > 0 for arrays
	TypeMod  int32
	NotNull  bool
	PKIndex  int // position in the primary key, -1 when not part of it
	IsEnum   bool
	// Generated marks a generated column (not replicated before PG 18).
	Generated bool
}

// Column returns the named column.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}
