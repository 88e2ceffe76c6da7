package shape

import (
	"errors"
	"strings"
)

// ParseRelation parses a table reference as Postgres would: `items`,
// `app.items`, `"My Schema"."my table"`. Unquoted parts are lower-cased;
// the schema defaults to public.
func ParseRelation(s string) (schema, name string, err error) {
	parts, err := splitIdents(s, '.')
	if err != nil {
		return "", "", err
	}
	switch len(parts) {
	case 1:
		return "public", parts[0], nil
	case 2:
		return parts[0], parts[1], nil
	}
	return "", "", errors.New("Invalid relation name: too many dots")
}

// ParseColumns parses a comma-separated list of identifiers, each quoted or not.
func ParseColumns(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("Invalid zero-length delimited identifier")
	}
	return splitIdents(s, ',')
}

// splitIdents splits s into identifiers separated by sep, applying
// Postgres' quoting rules ("" escapes a quote; unquoted is lower-cased).
func splitIdents(s string, sep byte) ([]string, error) {
	var out []string
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var id string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("Invalid unterminated quoted identifier")
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			id = b.String()
			if id == "" {
				return nil, errors.New("Invalid zero-length delimited identifier")
			}
		} else {
			start := i
			for i < len(s) && s[i] != sep && s[i] != '"' {
				i++
			}
			id = downcase(strings.TrimRight(s[start:i], " "))
			if id == "" {
				return nil, errors.New("Invalid zero-length identifier")
			}
			if i < len(s) && s[i] == '"' {
				return nil, errors.New("Invalid identifier: unexpected quote in " + s)
			}
		}
		for i < len(s) && s[i] == ' ' {
			i++
		}
		out = append(out, id)
		if i >= len(s) {
			return out, nil
		}
		if s[i] != sep {
			return nil, errors.New("Invalid identifier: unexpected character in " + s)
		}
		i++
	}
}

// downcase lower-cases ASCII letters only, as Postgres does for unquoted
// identifiers.
func downcase(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
