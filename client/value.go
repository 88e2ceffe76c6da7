package client

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Row is a row of a shape: column name to typed value (see Column.Parse).
type Row map[string]any

// clone returns a shallow copy of r.
func (r Row) clone() Row {
	c := make(Row, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

type parseFunc func(string) (any, error)

// scalarParser returns the parser of one value of the named type.
func scalarParser(typ string) parseFunc {
	switch typ {
	case "int2", "int4":
		return parseInt32
	case "int8":
		return parseInt64
	case "float4", "float8":
		return parseFloat
	case "numeric":
		return func(s string) (any, error) { return ParseDecimal(s) }
	case "bool":
		return parseBool
	case "timestamptz", "timestamp":
		return parseTimestampValue
	case "date":
		return parseDateValue
	case "time":
		return func(s string) (any, error) { return ParseTimeOfDay(s) }
	case "interval":
		return func(s string) (any, error) { return ParseInterval(s) }
	case "json", "jsonb":
		return parseJSON
	case "bytea":
		return parseBytea
	}
	return func(s string) (any, error) { return s, nil }
}

func invalid(typ, s string) error {
	return fmt.Errorf("%w %s: %q", ErrInvalidValue, typ, s)
}

func parseInt32(s string) (any, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return nil, invalid("integer", s)
	}
	return int32(n), nil
}

func parseInt64(s string) (any, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, invalid("int8", s)
	}
	return n, nil
}

// parseFloat accepts Postgres' NaN, Infinity and -Infinity, which
// strconv.ParseFloat also understands.
func parseFloat(s string) (any, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeError(err) {
		return nil, invalid("float", s)
	}
	return f, nil
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func parseBool(s string) (any, error) {
	switch s {
	case "t", "true":
		return true, nil
	case "f", "false":
		return false, nil
	}
	return nil, invalid("bool", s)
}

func parseJSON(s string) (any, error) {
	if !json.Valid([]byte(s)) {
		return nil, invalid("json", s)
	}
	return json.RawMessage(s), nil
}

// parseBytea decodes the hex format ("\x0001ff"), which bytea_output = hex
// guarantees.
func parseBytea(s string) (any, error) {
	h, ok := strings.CutPrefix(s, `\x`)
	if !ok {
		return nil, invalid("bytea", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, invalid("bytea", s)
	}
	return b, nil
}

func parseTimestampValue(s string) (any, error) {
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	return ParseTimestamp(s)
}

func parseDateValue(s string) (any, error) {
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	return ParseDate(s)
}
