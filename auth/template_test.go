package auth

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
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
