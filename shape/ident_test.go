package shape

import (
	"reflect"
	"testing"
)

func TestParseRelation(t *testing.T) {
	for _, tc := range []struct{ in, schema, name, err string }{
		{"items", "public", "items", ""},
		{"Items", "public", "items", ""},
		{"app.items", "app", "items", ""},
		{`"My Schema"."my table"`, "My Schema", "my table", ""},
		{`"a""b".c`, `a"b`, "c", ""},
		{`"with.dot"`, "public", "with.dot", ""},
		{`electric_test."issues for 5_1"`, "electric_test", "issues for 5_1", ""},
		{`""`, "", "", "Invalid zero-length delimited identifier"},
		{`a.b.c`, "", "", "Invalid relation name: too many dots"},
		{`"unterminated`, "", "", "Invalid unterminated quoted identifier"},
		{`a.`, "", "", "Invalid zero-length identifier"},
	} {
		schema, name, err := ParseRelation(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseRelation(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || schema != tc.schema || name != tc.name {
			t.Errorf("ParseRelation(%q) = %q, %q, %v; want %q, %q", tc.in, schema, name, err, tc.schema, tc.name)
		}
	}
}

func TestParseColumns(t *testing.T) {
	got, err := ParseColumns(`"has,comma","has""quote",ID, b`)
	want := []string{"has,comma", `has"quote`, "id", "b"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "a,,b", `"",a`, `a,"b`} {
		if _, err := ParseColumns(bad); err == nil {
			t.Errorf("ParseColumns(%q) accepted", bad)
		}
	}
}

func FuzzParseRelation(f *testing.F) {
	for _, s := range []string{"items", `"a"."b"`, `a.b.c`, `"x""y"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		schema, name, err := ParseRelation(s)
		if err == nil && (schema == "" || name == "") {
			t.Fatalf("ParseRelation(%q) accepted an empty part: %q.%q", s, schema, name)
		}
	})
}
