package auth

import (
	"encoding/json"
	"fmt"
	"strings"
)

// pgText renders a JSON value (as decoded with UseNumber: a row from
// to_jsonb, or a claim) in the Postgres text form that package where
// parses. ok is false for JSON null (SQL NULL). document marks json/jsonb
// columns, whose value is the JSON document itself.
func pgText(v any, document bool) (text string, ok bool, err error) {
	if v == nil {
		return "", false, nil
	}
	if document {
		b, err := json.Marshal(v)
		if err != nil {
			return "", false, fmt.Errorf("encode json: %w", err)
		}
		return string(b), true, nil
	}
	switch x := v.(type) {
	case string:
		return x, true, nil
	case json.Number:
		return x.String(), true, nil
	case bool:
		if x {
			return "true", true, nil
		}
		return "false", true, nil
	case float64:
		return fmt.Sprint(x), true, nil
	case []any:
		var b strings.Builder
		if err := writeArray(&b, x); err != nil {
			return "", false, err
		}
		return b.String(), true, nil
	case map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false, fmt.Errorf("encode json: %w", err)
		}
		return string(b), true, nil
	}
	return "", false, fmt.Errorf("unsupported value of type %T", v)
}

// writeArray writes a JSON array as a Postgres array literal; nested
// arrays are dimensions, objects are jsonb elements.
func writeArray(b *strings.Builder, a []any) error {
	b.WriteByte('{')
	for i, e := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeElement(b, e); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func writeElement(b *strings.Builder, e any) error {
	switch x := e.(type) {
	case nil:
		b.WriteString("NULL")
		return nil
	case []any:
		return writeArray(b, x)
	}
	text, _, err := pgText(e, false)
	if err != nil {
		return err
	}
	b.WriteByte('"')
	b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(text))
	b.WriteByte('"')
	return nil
}
