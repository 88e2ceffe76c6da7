package auth

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/voltsync/volt"
)

// TestParseTemplate finds $claims references only where Postgres would
// read a parameter, and keeps error locations by padding replacements.
func TestParseTemplate(t *testing.T) {
	cases := []struct {
		clause string
		refs   [][]string
		render string // with every claim bound
	}{
		{"owner_id = $claims.sub", [][]string{{"sub"}}, "owner_id = $1         "},
		{"org = $claims.org.id AND $CLAIMS.role = 'a'", [][]string{{"org", "id"}, {"role"}}, "org = $1             AND $2           = 'a'"},
		{`x = $claims."https://example.com/org"`, [][]string{{"https://example.com/org"}}, ""},
		{`x = $claims."a""b"`, [][]string{{`a"b`}}, ""},
		{"x = '$claims.sub'", nil, "x = '$claims.sub'"},
		{"x = 'it''s $claims.sub'", nil, ""},
		{`x = E'\' $claims.sub'`, nil, ""},
		{`"$claims.sub" = 1`, nil, ""},
		{"x = 1 -- $claims.sub\n AND y", nil, ""},
		{"x = 1 /* $claims.a /* $claims.b */ */", nil, ""},
		{"x = $$ $claims.sub $$", nil, ""},
		{"x = $t$ $claims.sub $t$", nil, ""},
		{"col$claims = 1", nil, ""},
		{"x = 1 AND y = $claims.b2::int", [][]string{{"b2"}}, ""},
	}
	for _, c := range cases {
		tmpl, err := parseTemplate(c.clause)
		if err != nil {
			t.Errorf("%s: %v", c.clause, err)
			continue
		}
		if !reflect.DeepEqual(tmpl.refs, c.refs) {
			t.Errorf("%s: refs %q, want %q", c.clause, tmpl.refs, c.refs)
		}
		got := tmpl.render(nil)
		if c.render != "" && got != c.render {
			t.Errorf("%s: render %q, want %q", c.clause, got, c.render)
		}
		if len(got) != len(c.clause) {
			t.Errorf("%s: render %q moves locations", c.clause, got)
		}
		if len(c.refs) == 0 && got != c.clause {
			t.Errorf("%s: changed without references: %q", c.clause, got)
		}
	}
}

func TestParseTemplateErrors(t *testing.T) {
	for clause, want := range map[string]string{
		"x = $1":              "positional parameter $1",
		"x = $claims":         "write $claims.<name>",
		"x = $claims.":        "a claim name must follow the dot",
		`x = $claims.""`:      "empty claim name",
		"x = $other.a":        "unknown parameter $other",
		"x = $":               "unknown parameter $",
		"x = 'open":           "unterminated quoted string",
		"x = /* open":         "unterminated comment",
		"x = $q$ open":        "unterminated dollar-quoted",
		`x = $claims."open`:   "unterminated quoted string",
		"x = $claims.a.$1 OR": "a claim name must follow the dot",
	} {
		_, err := parseTemplate(clause)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", clause, err, want)
		}
	}
}

// TestPGText renders JSON values as Postgres text input.
func TestPGText(t *testing.T) {
	cases := []struct {
		v        any
		document bool
		want     string
		ok       bool
	}{
		{nil, false, "", false},
		{"s", false, "s", true},
		{json.Number("12.50"), false, "12.50", true},
		{true, false, "true", true},
		{[]any{"a", `b"c\d`, nil, json.Number("1")}, false, `{"a","b\"c\\d",NULL,"1"}`, true},
		{[]any{[]any{json.Number("1"), json.Number("2")}, []any{}}, false, `{{"1","2"},{}}`, true},
		{map[string]any{"k": "v"}, false, `{"k":"v"}`, true},
		{"s", true, `"s"`, true},
		{[]any{json.Number("1")}, true, `[1]`, true},
	}
	for _, c := range cases {
		got, ok, err := pgText(c.v, c.document)
		if err != nil || got != c.want || ok != c.ok {
			t.Errorf("pgText(%#v, %v) = %q, %v, %v; want %q, %v", c.v, c.document, got, ok, err, c.want, c.ok)
		}
	}
}

// TestPredicate evaluates checks with claims of several JSON types against
// rows as to_jsonb returns them.
func TestPredicate(t *testing.T) {
	tbl := &volt.Table{Schema: "public", Name: "t", Columns: []volt.Column{
		{Name: "owner", TypeName: "text"}, {Name: "n", TypeName: "int8"}, {Name: "flag", TypeName: "bool"},
		{Name: "tags", TypeName: "text", Dims: 1}, {Name: "doc", TypeName: "jsonb"},
	}}
	row := map[string]any{"owner": "u1", "n": json.Number("12345678901234567"), "flag": true, "tags": []any{"a", "b"}, "doc": map[string]any{"k": []any{json.Number("1")}}}
	cases := []struct {
		check  string
		claims Claims
		want   bool
	}{
		{"'editor' = ANY($claims.roles)", Claims{"roles": []any{"viewer", "editor"}}, true},
		{"'editor' = ANY($claims.roles)", Claims{"roles": []any{"viewer"}}, false},
		{"'editor' = ANY($claims.roles)", Claims{}, false},
		{"n = $claims.n", Claims{"n": json.Number("12345678901234567")}, true},
		{"flag = $claims.ok", Claims{"ok": true}, true},
		{"flag = $claims.ok", Claims{"ok": false}, false},
		{`owner = $claims."https://x.test/id"`, Claims{"https://x.test/id": "u1"}, true},
		{"$claims.t = ANY(tags)", Claims{"t": "b"}, true},
		{"tags && $claims.ts", Claims{"ts": []any{"z", "a"}}, true},
		{"doc = $claims.doc", Claims{"doc": map[string]any{"k": []any{json.Number("1")}}}, true},
		{"owner = $claims.a.b.c", Claims{"a": map[string]any{"b": map[string]any{"c": "u1"}}}, true},
		{"owner = $claims.a.b.c", Claims{"a": "flat"}, false},
		{"owner = $claims.sub OR $claims.role = 'admin'", Claims{"role": "admin"}, true},
		{"owner = $claims.sub OR $claims.role = 'admin'", nil, false},
		{"n = $claims.n", Claims{"n": "12 OR true"}, false},
	}
	for _, c := range cases {
		p, err := (&compiler{rules: &Rules{}}).check(tbl, c.check)
		if err != nil {
			t.Errorf("%s: %v", c.check, err)
			continue
		}
		got, _ := p.holds(c.claims, row)
		if got != c.want {
			t.Errorf("%s with %v: %v, want %v", c.check, c.claims, got, c.want)
		}
	}
}
