package httpapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
)

// TestDecodeSubsetBody: a POST body holds only subset fields; any shape
// parameter in it is a 400 naming it (it used to override the URL's).
func TestDecodeSubsetBody(t *testing.T) {
	for _, c := range []struct {
		body  string
		field string // "" when accepted
	}{
		{``, ""},
		{`  `, ""},
		{`{"where":"id = $1","params":{"1":5},"order_by":"id","limit":2,"offset":1}`, ""},
		{`{"subset":{"where":"true"}}`, ""},
		{`{"where":"true","where_expr":{"a":1},"order_by_expr":[1]}`, ""},
		{`{"table":"secrets"}`, "table"},
		{`{"where":"true","columns":"id,secret"}`, "columns"},
		{`{"where":"true","replica":"full"}`, "replica"},
		{`{"where":"true","handle":"1-2"}`, "handle"},
		{`{"subset":{"where":"true","table":"x"}}`, "table"},
		{`{"subset":{"where":"true"},"log":"full"}`, "log"},
		{`{"Where":"true"}`, "Where"},
		{`{"where":"a\u0000b"}`, "subset"},
		{`{"params":{"1":"\u0000"}}`, "subset"},
		{`{"limit":"2"}`, "subset"},
	} {
		sub, berr := decodeSubsetBody([]byte(c.body))
		if c.field == "" {
			if berr != nil {
				t.Errorf("%s: refused %d %v", c.body, berr.status, berr.body)
			}
			if strings.TrimSpace(c.body) == "" && sub != nil {
				t.Errorf("%s: a subset from an empty body", c.body)
			}
			continue
		}
		if berr == nil || berr.status != 400 {
			t.Errorf("%s: accepted (%+v); want 400 naming %s", c.body, sub, c.field)
			continue
		}
		b, _ := json.Marshal(berr.body)
		var body struct {
			Errors map[string]any `json:"errors"`
		}
		if json.Unmarshal(b, &body) != nil || body.Errors[c.field] == nil {
			t.Errorf("%s: %s; want errors.%s", c.body, b, c.field)
		}
	}
	sub, _ := decodeSubsetBody([]byte(`{"subset":{"where":"id > $1","params":{"1":7},"order_by":"id DESC","limit":3,"offset":4}}`))
	if sub == nil || sub.Where != "id > $1" || sub.Params["1"] != "7" || sub.OrderBy != "id DESC" || *sub.Limit != 3 || *sub.Offset != 4 {
		t.Errorf("nested subset: %+v", sub)
	}
}

// TestParseRequestRefusesBadText: NUL bytes and invalid UTF-8 in shape
// parameters are the request's mistake (400), found before Postgres,
// which would refuse them with an error volt answered 503.
func TestParseRequestRefusesBadText(t *testing.T) {
	for _, c := range []struct{ query, field string }{
		{"table=items%00&offset=-1", "table"},
		{"table=items%ff&offset=-1", "table"},
		{"table=items&offset=-1&where=a%00", "where"},
		{"table=items&offset=-1&columns=id,a%00", "columns"},
		{"table=items&offset=-1&queryable_columns=id,%ff", "queryable_columns"},
		{"table=items&offset=-1&where=a%3D$1&params[1]=x%00", "params"},
	} {
		q, _ := url.ParseQuery(c.query)
		_, errs := parseRequest(q)
		if len(errs[c.field]) == 0 {
			t.Errorf("%s: errors %v; want one for %s", c.query, errs, c.field)
		}
	}
	q, _ := url.ParseQuery("table=items&offset=-1&queryable_columns=id,%22Title%22")
	req, errs := parseRequest(q)
	if len(errs) > 0 || strings.Join(req.def.Queryable, "|") != "id|Title" {
		t.Errorf("queryable_columns: %v %v", req.def.Queryable, errs)
	}
}

func TestSystemTable(t *testing.T) {
	for _, c := range []struct {
		schema, name string
		system       bool
	}{
		{"pg_catalog", "pg_authid", true}, {"information_schema", "tables", true}, {"pg_toast", "x", true},
		{"pg_temp_3", "t", true}, {"pg_toast_temp_1", "t", true}, {"volt", "clients", true},
		{"volt", "receipts", false}, {"public", "pg_catalog", false}, {"app", "items", false},
	} {
		if got := systemTable(c.schema, c.name); got != c.system {
			t.Errorf("systemTable(%s, %s) = %v", c.schema, c.name, got)
		}
	}
}

// fuzzTable is the table shape definitions are checked against in
// FuzzShapeRequest.
var fuzzTable = &volt.Table{OID: 1, Schema: "public", Name: "items", PrimaryKey: []string{"id"}, Columns: []volt.Column{
	{Name: "id", TypeName: "int4", PKIndex: 0},
	{Name: "title", TypeName: "text", PKIndex: -1},
	{Name: "n", TypeName: "int8", PKIndex: -1},
	{Name: "Tags", TypeName: "text", Dims: 1, PKIndex: -1},
	{Name: "g", TypeName: "int4", PKIndex: -1, Generated: true},
}}

// FuzzShapeRequest feeds shape requests (query string and POST body)
// through parsing, subset decoding and, when they parse, shape
// validation and subset compilation. It checks that nothing panics, that
// accepted values can be sent to Postgres, and that a body never yields
// anything but a subset. Run it for longer with
//
//	go test -run '^$' -fuzz FuzzShapeRequest -fuzztime 2m ./httpapi/
func FuzzShapeRequest(f *testing.F) {
	for _, s := range [][2]string{
		{"table=items&offset=-1", ""},
		{"table=items&offset=0_0&handle=h&live=true&where=id%3D$1&params[1]=a&columns=id,%22Tags%22", ""},
		{"table=items&offset=-1&queryable_columns=id,title&columns=id", `{"where":"id > $1","params":{"1":5},"order_by":"id","limit":3}`},
		{"table=items%00&offset=now", `{"subset":{"where":"true"}}`},
		{"table=items&offset=-1", `{"table":"secrets"}`},
		{"table=items&offset=-1&subset__where=title%3D$1&subset__params=%7B%221%22:1%7D&subset__limit=2&subset__order_by=n%20DESC%20NULLS%20LAST", `[]`},
		{"table=%22My%22.items&offset=1_inf&handle=x&live&live_sse&replica=full&log=changes_only", `{"where":"n / 0 = 1","order_by":"title, id"}`},
		{"table=items&offset=-1&where=title::int4%20%3D%201&queryable_columns=title", `{"subset":{},"x":1}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, query, body string) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("query %q body %q took %v", query, body, d)
			}
		}()
		q, _ := url.ParseQuery(query) // net/http keeps what parses, as here
		req, errs := parseRequest(q)
		getSub, _ := subsetFromQuery(q)
		sub, berr := decodeSubsetBody([]byte(body))
		if berr != nil && berr.status != 400 {
			t.Fatalf("body %q: status %d", body, berr.status)
		}
		if sub != nil {
			if subsetTextError(sub) != "" {
				t.Fatalf("body %q: accepted text Postgres refuses: %+v", body, sub)
			}
			var top map[string]json.RawMessage
			if json.Unmarshal([]byte(body), &top) != nil {
				t.Fatalf("body %q: not an object, yet a subset", body)
			}
			if inner, ok := top["subset"]; ok {
				if len(top) != 1 {
					t.Fatalf("body %q: subset with other keys", body)
				}
				top = nil
				if json.Unmarshal(inner, &top) != nil {
					t.Fatalf("body %q: subset is not an object", body)
				}
			}
			for k := range top {
				if !bodyFields[k] {
					t.Fatalf("body %q: key %q accepted", body, k)
				}
			}
		}
		if len(errs) > 0 {
			return
		}
		d := req.def
		for _, s := range append([]string{req.table, d.Where}, append(d.Columns, d.Queryable...)...) {
			if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
				t.Fatalf("query %q: accepted %q", query, s)
			}
		}
		if !req.tableSet {
			return
		}
		if _, _, err := shape.ParseRelation(req.table); err != nil {
			return
		}
		sh, err := shape.New(d, fuzzTable)
		if err != nil {
			return
		}
		if d.Queryable != nil {
			for _, i := range sh.Selected {
				if name := fuzzTable.Columns[i].Name; !contains(d.Queryable, name) {
					t.Fatalf("query %q: column %s synced outside queryable_columns", query, name)
				}
			}
		}
		for _, s := range []*subset{sub, getSub} {
			if s == nil {
				continue
			}
			if s.Where != "" {
				if f, err := sh.CompileWhere(s.Where, s.Params, d.Queryable); err == nil && d.Queryable != nil {
					for _, c := range f.Columns() {
						if !contains(d.Queryable, c) {
							t.Fatalf("subset where %q refers to %s outside queryable_columns", s.Where, c)
						}
					}
				}
			}
			if s.OrderBy != "" {
				_, _ = sh.ParseOrderBy(s.OrderBy, d.Queryable)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
