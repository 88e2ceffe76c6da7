package client

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/voltsync/volt"
)

// parseTableName splits "table", "schema.table" or quoted names
// (`"My Schema"."My Table"`) as Postgres reads them: unquoted parts are
// folded to lower case and the default schema is public.
func parseTableName(s string) (schema, name string, err error) {
	var parts []string
	for s != "" {
		var part string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return "", "", fmt.Errorf("unterminated quoted name in %q", s)
				}
				b.WriteString(s[i : i+j])
				i += j + 1
				if i < len(s) && s[i] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				break
			}
			part, s = b.String(), s[i:]
		} else {
			j := strings.IndexByte(s, '.')
			if j < 0 {
				j = len(s)
			}
			part, s = strings.ToLower(s[:j]), s[j:]
		}
		parts = append(parts, part)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return "", "", fmt.Errorf("invalid table name")
		}
		s = s[1:]
	}
	switch len(parts) {
	case 1:
		return "public", parts[0], nil
	case 2:
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("invalid table name")
}

// keyPrefix is the start of the row keys of a table: `"schema"."table"`.
func keyPrefix(schema, name string) string {
	q := func(s string) string {
		s = strings.ReplaceAll(s, "/", "//")
		s = strings.ReplaceAll(s, ".", "..")
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return q(schema) + "." + q(name)
}

// primaryKey returns the primary key columns of a schema, in key order.
func primaryKey(s Schema) []string {
	var cols []string
	for name, c := range s {
		if c.PKIndex != nil {
			cols = append(cols, name)
		}
	}
	slices.SortFunc(cols, func(a, b string) int { return *s[a].PKIndex - *s[b].PKIndex })
	return cols
}

// rowKey builds the key a shape gives the row that m changes: prefix and
// the primary key values as Postgres prints them. ok is false when a key
// column is missing from the mutation.
func rowKey(prefix string, pk []string, s Schema, m volt.Mutation) (string, bool) {
	if len(pk) == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString(prefix)
	for _, col := range pk {
		v, ok := m.Key[col]
		if !ok && m.Op == volt.OpInsert {
			v, ok = m.Values[col]
		}
		if !ok {
			return "", false
		}
		if v == nil {
			b.WriteString("/_")
			continue
		}
		text := valueText(v)
		if s[col].Type == "uuid" {
			text = strings.ToLower(text)
		}
		b.WriteString(`/"`)
		b.WriteString(strings.ReplaceAll(text, "/", "//"))
		b.WriteByte('"')
	}
	return b.String(), true
}

// valueText renders a mutation value as Postgres' text output would, for
// the common cases: strings as they are, numbers in plain notation,
// booleans as t and f.
func valueText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "t"
		}
		return "f"
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v)
	case fmt.Stringer:
		return v.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// typedValue converts a mutation value to what a shape would hold for the
// column (see Column.Parse); values it cannot convert are kept as given.
func typedValue(col Column, known bool, v any) any {
	if v == nil || !known {
		return v
	}
	switch col.Type {
	case "json", "jsonb":
		if col.Dims == 0 {
			if raw, ok := v.(json.RawMessage); ok {
				return raw
			}
			if b, err := json.Marshal(v); err == nil {
				return json.RawMessage(b)
			}
			return v
		}
	}
	if col.Dims > 0 {
		if s, ok := v.(string); ok {
			if out, err := col.Parse(s); err == nil {
				return out
			}
			return v
		}
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return v
		}
		elem := col
		elem.Dims--
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = typedValue(elem, true, rv.Index(i).Interface())
		}
		return out
	}
	if t, ok := v.(time.Time); ok {
		if col.Type == "timestamptz" || col.Type == "timestamp" || col.Type == "date" {
			return t.UTC()
		}
	}
	text := valueText(v)
	if col.Type == "bool" {
		text = strings.ToLower(text)
	}
	out, err := col.Parse(text)
	if err != nil {
		return v
	}
	return out
}
