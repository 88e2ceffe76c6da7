package mutations

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// pgText converts a JSON value for column c into the text Postgres casts to
// the column's type, or nil for NULL. Values are never interpolated into
// SQL: the text travels as a parameter.
func pgText(c *column, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if !c.document {
			return nil, fmt.Errorf("column %s: an object needs a json or jsonb column", c.name)
		}
		return jsonText(x)
	case []any:
		switch {
		case c.document:
			return jsonText(x)
		case c.array:
			return arrayLiteral(x)
		}
		return nil, fmt.Errorf("column %s: an array needs an array, json or jsonb column", c.name)
	}
	if c.document {
		return jsonText(v) // a scalar JSON document: "a" is the JSON string "a"
	}
	return scalarText(v)
}

func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode JSON value: %w", err)
	}
	return string(b), nil
}

// scalarText renders a JSON scalar as Postgres input text.
func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case int, int32, int64, uint32, uint64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("unsupported value %T", v)
}

// arrayLiteral renders a JSON array as a Postgres array literal:
// ["a", null, "b\"c"] → {"a",NULL,"b\"c"}; nested arrays are dimensions.
func arrayLiteral(a []any) (string, error) {
	var b strings.Builder
	if err := writeArray(&b, a, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeArray(b *strings.Builder, a []any, depth int) error {
	if depth > 6 { // Postgres' MAXDIM
		return fmt.Errorf("array nested too deeply")
	}
	b.WriteByte('{')
	for i, e := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		switch x := e.(type) {
		case nil:
			b.WriteString("NULL")
		case []any:
			if err := writeArray(b, x, depth+1); err != nil {
				return err
			}
		case map[string]any:
			s, err := jsonText(x)
			if err != nil {
				return err
			}
			writeQuoted(b, s)
		default:
			s, err := scalarText(x)
			if err != nil {
				return err
			}
			writeQuoted(b, s)
		}
	}
	b.WriteByte('}')
	return nil
}

func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

// keyText renders a primary key value for dependency tracking: the same
// row gives the same text whether the client sent 7 or "7".
func keyText(v any) string {
	if s, err := scalarText(v); err == nil {
		return s
	}
	s, _ := jsonText(v)
	return s
}
