package where

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// jsonb values are trees of jsonNull, bool, *numeric, string, []any and
// map[string]any, mirroring jsonb's storage (numbers are numerics,
// duplicate keys keep the last value).

func parseJSONB(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	bad := errorf("invalid input syntax for type json")
	if err := dec.Decode(&v); err != nil {
		return nil, bad
	}
	if _, err := dec.Token(); err == nil {
		return nil, bad
	}
	if strings.Contains(s, `\u0000`) {
		return nil, errorf("unsupported Unicode escape sequence")
	}
	return convertJSON(v), nil
}

// jsonNull is JSON's null (Go nil means SQL NULL in the evaluator).
type jsonNull struct{}

func convertJSON(v any) any {
	switch x := v.(type) {
	case nil:
		return jsonNull{}
	case json.Number:
		n, err := parseNumeric(string(x))
		if err != nil {
			return string(x)
		}
		return n
	case []any:
		for i := range x {
			x[i] = convertJSON(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = convertJSON(x[k])
		}
	}
	return v
}

// equalJSONB is jsonb equality.
func equalJSONB(a, b any) bool {
	switch x := a.(type) {
	case jsonNull:
		return b == jsonNull{}
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case *numeric:
		y, ok := b.(*numeric)
		return ok && cmpNumeric(x, y) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSONB(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalJSONB(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

// formatJSONB implements jsonb_out: keys ordered by length then bytes,
// ", " and ": " separators.
func formatJSONB(v any) string {
	var b strings.Builder
	writeJSONB(&b, v)
	return b.String()
}

func writeJSONB(b *strings.Builder, v any) {
	switch x := v.(type) {
	case jsonNull:
		b.WriteString("null")
	case bool:
		fmt.Fprint(b, x)
	case *numeric:
		b.WriteString(x.String())
	case string:
		writeJSONString(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONB(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) < len(keys[j])
			}
			return keys[i] < keys[j]
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			writeJSONB(b, x[k])
		}
		b.WriteByte('}')
	}
}

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				fmt.Fprintf(b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
