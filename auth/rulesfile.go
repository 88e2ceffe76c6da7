package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/voltsync/volt"
)

// ruleFile is the rules file as written, before it is compiled against the
// catalog.
type ruleFile struct {
	tables    []tableEntry
	mutations []string
}

// tableEntry is one entry of "tables"; write (read) is nil when the table
// has no write (read) rule.
type tableEntry struct {
	key   string // as written: "todos", "app.items"
	write *writeEntry
	read  *readEntry
}

// readEntry is a table's read rule: who may sync it and which rows.
type readEntry struct {
	columns []string // nil: every column
	check   string   // "": every row
}

type writeEntry struct {
	operations []string
	columns    []string // nil: every column
	check      string
}

// parseRuleFile decodes and validates the rules file's structure. Unknown
// keys are errors, so a misspelt key cannot silently loosen a rule.
func parseRuleFile(data []byte) (*ruleFile, error) {
	var probe any
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, syntaxError(data, err)
	}
	top, err := object(data, "", []string{"tables", "mutations"})
	if err != nil {
		return nil, err
	}
	f := &ruleFile{}
	if raw, ok := top["tables"]; ok {
		if f.tables, err = parseTables(raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := top["mutations"]; ok {
		if f.mutations, err = parseMutations(raw); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func parseTables(raw json.RawMessage) ([]tableEntry, error) {
	entries, err := object(raw, "tables", nil)
	if err != nil {
		return nil, err
	}
	var out []tableEntry
	for _, key := range sortedKeys(entries) {
		path := "tables." + key
		fields, err := object(entries[key], path, []string{"write", "read"})
		if err != nil {
			return nil, err
		}
		e := tableEntry{key: key}
		if raw, ok := fields["write"]; ok {
			if e.write, err = parseWrite(raw, path+".write"); err != nil {
				return nil, err
			}
		}
		if raw, ok := fields["read"]; ok {
			if e.read, err = parseRead(raw, path+".read"); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func parseWrite(raw json.RawMessage, path string) (*writeEntry, error) {
	fields, err := object(raw, path, []string{"operations", "columns", "check"})
	if err != nil {
		return nil, err
	}
	w := &writeEntry{}
	if w.operations, err = stringList(fields["operations"], path+".operations"); err != nil {
		return nil, err
	}
	if len(w.operations) == 0 {
		return nil, fmt.Errorf("%s.operations is required: list at least one of insert, update and delete", path)
	}
	for _, op := range w.operations {
		if op != volt.OpInsert && op != volt.OpUpdate && op != volt.OpDelete {
			return nil, fmt.Errorf("%s.operations: unknown operation %q (use insert, update or delete)", path, op)
		}
	}
	if raw, ok := fields["columns"]; ok {
		if w.columns, err = stringList(raw, path+".columns"); err != nil {
			return nil, err
		}
		if w.columns == nil {
			w.columns = []string{}
		}
	}
	if raw, ok := fields["check"]; ok {
		if err := json.Unmarshal(raw, &w.check); err != nil {
			return nil, fmt.Errorf("%s.check must be a string (a where clause)", path)
		}
		if strings.TrimSpace(w.check) == "" {
			return nil, fmt.Errorf("%s.check is empty: leave it out to have no row check", path)
		}
	}
	return w, nil
}

func parseRead(raw json.RawMessage, path string) (*readEntry, error) {
	fields, err := object(raw, path, []string{"columns", "check"})
	if err != nil {
		return nil, err
	}
	r := &readEntry{}
	if raw, ok := fields["columns"]; ok {
		if r.columns, err = stringList(raw, path+".columns"); err != nil {
			return nil, err
		}
		if len(r.columns) == 0 {
			return nil, fmt.Errorf("%s.columns is empty: list the readable columns (the primary key included), or leave it out for every column", path)
		}
	}
	if raw, ok := fields["check"]; ok {
		if err := json.Unmarshal(raw, &r.check); err != nil {
			return nil, fmt.Errorf("%s.check must be a string (a where clause)", path)
		}
		if strings.TrimSpace(r.check) == "" {
			return nil, fmt.Errorf("%s.check is empty: leave it out to make every row readable", path)
		}
	}
	return r, nil
}

func parseMutations(raw json.RawMessage) ([]string, error) {
	entries, err := object(raw, "mutations", nil)
	if err != nil {
		return nil, err
	}
	names := sortedKeys(entries)
	for _, name := range names {
		if name == "" {
			return nil, errors.New("mutations: a named mutation needs a name")
		}
		if _, err := object(entries[name], "mutations."+name, []string{}); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// object decodes raw as a JSON object whose keys must be among known (any
// key when known is nil).
func object(raw json.RawMessage, path string, known []string) (map[string]json.RawMessage, error) {
	where := path
	if where == "" {
		where = "the top level"
	}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' {
		return nil, fmt.Errorf("%s must be a JSON object", where)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if known == nil {
		return m, nil
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		expected := "it takes no keys yet"
		if len(known) > 0 {
			expected = "known keys: " + strings.Join(known, ", ")
		}
		return nil, fmt.Errorf("%s: unknown key %s (%s)", where, strings.Join(unknown, ", "), expected)
	}
	return m, nil
}

func stringList(raw json.RawMessage, path string) ([]string, error) {
	if raw == nil {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, fmt.Errorf("%s must be a list of strings", path)
	}
	return list, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// syntaxError turns a JSON syntax error into "line L, column C: …".
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	before := data[:min(int(se.Offset), len(data))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1)
	return fmt.Errorf("line %d, column %d: %s", line, col, se.Error())
}
