package localstore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/voltsync/volt/client"
)

// toSQL converts a value typed by the client (see client.Column.Parse) to
// what the column stores in SQLite: integers and booleans as INTEGER,
// floats as REAL, bytea as BLOB, numeric exactly as text, times as ISO
// 8601 text, json as its text and arrays as JSON text.
func toSQL(c client.Column, v any) any {
	switch v := v.(type) {
	case nil, int64, float64, string, []byte:
		return v
	case int32:
		return int64(v)
	case bool:
		if v {
			return int64(1)
		}
		return int64(0)
	case json.RawMessage:
		return string(v)
	case time.Time:
		return formatTime(c.Type, v)
	case []any:
		b, err := json.Marshal(jsonElems(c.Type, v))
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

func formatTime(typ string, t time.Time) string {
	switch typ {
	case "date":
		return t.Format("2006-01-02")
	case "timestamp":
		return t.Format("2006-01-02T15:04:05.999999")
	}
	return t.Format(time.RFC3339Nano)
}

// jsonElems converts array elements to values that marshal as the write
// endpoint reads them.
func jsonElems(typ string, a []any) []any {
	out := make([]any, len(a))
	for i, v := range a {
		switch v := v.(type) {
		case []any:
			out[i] = jsonElems(typ, v)
		case time.Time:
			out[i] = formatTime(typ, v)
		case []byte:
			out[i] = `\x` + hex.EncodeToString(v)
		case json.RawMessage:
			out[i] = v
		case fmt.Stringer:
			out[i] = v.String()
		default:
			out[i] = v
		}
	}
	return out
}

// fromJSON converts an outbox value back to what the column stores.
func fromJSON(c client.Column, raw json.RawMessage) any {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if c.Dims > 0 || c.Type == "json" || c.Type == "jsonb" {
		return string(raw)
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	switch v := v.(type) {
	case bool:
		if v {
			return int64(1)
		}
		return int64(0)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case string:
		if c.Type == "bytea" {
			if b, err := hex.DecodeString(strings.TrimPrefix(v, `\x`)); err == nil {
				return b
			}
		}
		return v
	}
	return string(raw)
}

// decodeObject parses a JSON object of column values.
func decodeObject(s string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if s == "" {
		return m, nil
	}
	err := json.Unmarshal([]byte(s), &m)
	return m, err
}

// decodeValues parses a JSON object of column values into Go values for
// the write endpoint (numbers keep their digits).
func decodeValues(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	err := d.Decode(&m)
	return m, err
}
