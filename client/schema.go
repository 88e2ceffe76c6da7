package client

import (
	"encoding/json"
	"fmt"
)

// Schema is the electric-schema header: column name to its type.
type Schema map[string]Column

// Column is one column of a Schema.
type Column struct {
	// Type is the Postgres type name (pg_type.typname); for arrays the
	// element type's.
	Type string `json:"type"`
	// Dims is the number of array dimensions, 0 for scalars.
	Dims int `json:"dims,omitempty"`
	// PKIndex is the column's position in the primary key, nil when it is
	// not part of it.
	PKIndex *int `json:"pk_index,omitempty"`
	NotNull bool `json:"not_null,omitempty"`
	// Type modifiers, when the column has them.
	MaxLength int    `json:"max_length,omitempty"`
	Length    int    `json:"length,omitempty"`
	Precision int    `json:"precision,omitempty"`
	Scale     int    `json:"scale,omitempty"`
	Fields    string `json:"fields,omitempty"`
	TypeMod   int    `json:"type_mod,omitempty"`
}

// ParseSchema parses an electric-schema header value.
func ParseSchema(header string) (Schema, error) {
	var s Schema
	if err := json.Unmarshal([]byte(header), &s); err != nil {
		return nil, protocolErrorf("electric-schema: %v", err)
	}
	return s, nil
}

// Parse converts a column's text value (Postgres text output with volt's
// and Electric's display settings) to a Go value:
//
//	int2, int4                    int32
//	int8                          int64
//	float4, float8                float64 (NaN, ±Inf included)
//	numeric                       Decimal (exact; never a float)
//	bool                          bool ("t"/"true", "f"/"false")
//	timestamptz, timestamp        time.Time in UTC ("infinity" and "-infinity" stay strings)
//	date                          time.Time at midnight UTC (likewise)
//	time                          TimeOfDay
//	interval                      Interval
//	json, jsonb                   json.RawMessage
//	bytea                         []byte
//	text, varchar, bpchar, uuid,
//	enums and any other type      string
//
// An array column (Dims > 0) becomes []any of the element type, nested
// for each further dimension; NULL elements are nil.
func (c Column) Parse(text string) (any, error) {
	if c.Dims > 0 {
		return parseArray(text, arrayDelim(c.Type), scalarParser(c.Type))
	}
	return scalarParser(c.Type)(text)
}

// parseRow types the values of one message with s. Columns missing from s
// keep their text.
func (s Schema) parseRow(raw map[string]*string) (Row, error) {
	if raw == nil {
		return nil, nil
	}
	row := make(Row, len(raw))
	for name, v := range raw {
		if v == nil {
			row[name] = nil
			continue
		}
		col, ok := s[name]
		if !ok {
			row[name] = *v
			continue
		}
		val, err := col.Parse(*v)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", name, err)
		}
		row[name] = val
	}
	return row, nil
}
