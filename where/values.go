package where

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseValue implements the input function of scalar or array type t,
// turning Postgres text (as sent in rows or written in literals) into the
// Go representation used by the evaluator:
// bool → bool; int2/4/8 → int64; float4/8 → float64; numeric → *numeric;
// text-like, enums, uuid (canonical) and bytea (raw bytes) → string;
// date → days, time/timestamp/timestamptz → µs (int64); interval → interval;
// jsonb → jsonb tree; arrays → *array.
func parseValue(s string, t Type) (any, error) {
	if t.Array {
		return parseArray(s, t.elem())
	}
	if t.Enum {
		return s, nil
	}
	switch t.Name {
	case "bool":
		return parseBool(s)
	case "int2", "int4", "int8":
		return parseInt(s, t)
	case "float4":
		return parseFloat(s, 32)
	case "float8":
		return parseFloat(s, 64)
	case "numeric":
		return parseNumeric(s)
	case "text", "varchar", "bpchar", "unknown":
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return nil, errorf("invalid byte sequence for encoding \"UTF8\"")
		}
		return s, nil
	case "uuid":
		return parseUUID(s)
	case "bytea":
		return parseBytea(s)
	case "date":
		return parseDate(s)
	case "time":
		return parseTime(s)
	case "timestamp":
		return parseTimestamp(s, false)
	case "timestamptz":
		return parseTimestamp(s, true)
	case "interval":
		return parseInterval(s)
	case "jsonb":
		return parseJSONB(s)
	}
	return s, nil // opaque: only IS NULL and casts to text apply
}

// outputValue implements the output function of type t (what Postgres
// sends for a value of that type; concat() uses it).
func outputValue(v any, t Type) string {
	if t.Array {
		return formatArray(v.(*array), t.elem())
	}
	switch t.Name {
	case "bool":
		if v.(bool) {
			return "t"
		}
		return "f"
	case "int2", "int4", "int8":
		return strconv.FormatInt(v.(int64), 10)
	case "float4":
		return formatFloat(v.(float64), 32)
	case "float8":
		return formatFloat(v.(float64), 64)
	case "numeric":
		return v.(*numeric).String()
	case "bytea":
		return `\x` + hex.EncodeToString([]byte(v.(string)))
	case "date":
		return formatDate(v.(int64))
	case "time":
		return formatClock(v.(int64))
	case "timestamp":
		return formatTimestamp(v.(int64), false)
	case "timestamptz":
		return formatTimestamp(v.(int64), true)
	case "interval":
		return formatInterval(v.(interval))
	case "jsonb":
		return formatJSONB(v)
	}
	return v.(string)
}

// castToText is the explicit/implicit cast of a value to text: like the
// output function except bool → 'true'/'false' and bpchar loses its padding.
func castToText(v any, t Type) string {
	if !t.Array {
		switch t.Name {
		case "bool":
			return strconv.FormatBool(v.(bool))
		case "bpchar":
			return strings.TrimRight(v.(string), " ")
		}
	}
	return outputValue(v, t)
}

// parseBool implements boolin (unique prefixes of true/false/yes/no, on/off, 1/0).
func parseBool(s string) (bool, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t != "" {
		switch {
		case strings.HasPrefix("true", t), strings.HasPrefix("yes", t), t == "on", t == "1":
			return true, nil
		case strings.HasPrefix("false", t), strings.HasPrefix("no", t), len(t) >= 2 && strings.HasPrefix("off", t), t == "0":
			return false, nil
		}
	}
	return false, errorf("invalid input syntax for type boolean: %q", s)
}

// parseUUID implements uuid_in: 32 hex digits, optionally braced, with an
// optional hyphen after any group of four digits.
func parseUUID(s string) (string, error) {
	bad := errorf("invalid input syntax for type uuid: %q", s)
	t := s
	if strings.HasPrefix(t, "{") {
		if !strings.HasSuffix(t, "}") {
			return "", bad
		}
		t = t[1 : len(t)-1]
	}
	var digits []byte
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '-' && len(digits)%4 == 0 && len(digits) > 0 && len(digits) < 32 && i > 0 && t[i-1] != '-':
		case isHex(c) && len(digits) < 32:
			digits = append(digits, c|0x20)
		default:
			return "", bad
		}
	}
	if len(digits) != 32 {
		return "", bad
	}
	d := string(digits)
	return d[:8] + "-" + d[8:12] + "-" + d[12:16] + "-" + d[16:20] + "-" + d[20:], nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// parseBytea implements byteain for the hex (\x...) and escape formats.
func parseBytea(s string) (string, error) {
	if strings.HasPrefix(s, `\x`) {
		h := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, s[2:])
		b, err := hex.DecodeString(h)
		if err != nil {
			return "", errorf("invalid hexadecimal data")
		}
		return string(b), nil
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOct(s[i+2]) && isOct(s[i+3]):
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return "", errorf("invalid input syntax for type bytea")
		}
	}
	return string(out), nil
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }
