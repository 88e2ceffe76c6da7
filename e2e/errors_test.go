package e2e

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestInvalidRequests checks each invalid parameter combination gets a 400
// with Electric's body, no-store caching, and creates no shape.
func TestInvalidRequests(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `CREATE TABLE "Odd Table" (id int PRIMARY KEY)`)
	v := startVolt(t, db)
	ok := get(t, v.shapeURL("table", "items", "offset", "-1"))
	if ok.Status != 200 {
		t.Fatalf("valid request: %d %s", ok.Status, ok.Body)
	}
	handle := ok.Header.Get("electric-handle")

	cases := []struct {
		name   string
		kv     []string
		errors map[string][]string
	}{
		{"offset missing", []string{"table", "items"}, map[string][]string{"offset": {"can't be blank"}}},
		{"offset not a number", []string{"table", "items", "offset", "10"}, map[string][]string{"offset": {"has invalid format"}}},
		{"offset three parts", []string{"table", "items", "offset", "1_2_3"}, map[string][]string{"offset": {"has invalid format"}}},
		{"offset negative op", []string{"table", "items", "offset", "0_-1"}, map[string][]string{"offset": {"has invalid format"}}},
		{"handle missing", []string{"table", "items", "offset", "0_0"}, map[string][]string{"handle": {"can't be blank when offset != -1"}}},
		{"live at -1", []string{"table", "items", "offset", "-1", "live", "true"}, map[string][]string{"live": {"can't be true when offset == -1"}}},
		{"live at now", []string{"table", "items", "offset", "now", "live", "true"}, map[string][]string{"live": {"can't be true when offset is 'now'"}}},
		{"sse without live", []string{"table", "items", "offset", "0_0", "handle", handle, "live_sse", "true"}, map[string][]string{"live_sse": {"can't be true unless live is also true"}}},
		{"table missing", []string{"offset", "-1"}, map[string][]string{"table": {"can't be blank"}}},
		{"table unknown", []string{"table", "nonexistent", "offset", "-1"}, map[string][]string{"table": {`Table "public"."nonexistent" does not exist. If the table name contains capitals or special characters you must quote it.`}}},
		{"table needs quoting", []string{"table", "Odd Table", "offset", "-1"}, map[string][]string{"table": {`Table "public"."odd table" does not exist. If the table name contains capitals or special characters you must quote it.`}}},
		{"empty quoted table", []string{"table", `""`, "offset", "-1"}, map[string][]string{"table": {"Invalid zero-length delimited identifier"}}},
		{"replica invalid", []string{"table", "items", "offset", "-1", "replica", "half"}, map[string][]string{"replica": {"is invalid"}}},
		{"log invalid", []string{"table", "items", "offset", "-1", "log", "some"}, map[string][]string{"log": {"is invalid"}}},
		{"params not numbers", []string{"table", "items", "offset", "-1", "where", "id = $1", "params[a]", "1"}, map[string][]string{"params": {"Parameters can only use numbers as keys"}}},
		{"params gap", []string{"table", "items", "offset", "-1", "where", "id = $1", "params[2]", "1"}, map[string][]string{"params": {"Parameters must be numbered sequentially, starting from 1"}}},
		{"columns without pk", []string{"table", "items", "offset", "-1", "columns", "title"}, map[string][]string{"columns": {"The list of columns must include all primary key columns, missing: id"}}},
		{"columns unknown", []string{"table", "items", "offset", "-1", "columns", "id,nope"}, map[string][]string{"columns": {"The following columns are not found on the table: nope"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, v.shapeURL(tc.kv...))
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, body %s", r.Status, r.Body)
			}
			var body struct {
				Message string              `json:"message"`
				Errors  map[string][]string `json:"errors"`
			}
			if err := json.Unmarshal(r.Body, &body); err != nil {
				t.Fatalf("body %s: %v", r.Body, err)
			}
			if body.Message != "Invalid request" || !reflect.DeepEqual(body.Errors, tc.errors) {
				t.Fatalf("body %s, want errors %v", r.Body, tc.errors)
			}
			if cc := r.Header.Get("cache-control"); cc != "no-store" || r.Header.Get("surrogate-control") != "no-store" {
				t.Errorf("cache-control %q", cc)
			}
			if r.Header.Get("electric-has-data") != "" {
				t.Errorf("electric-has-data on an error")
			}
		})
	}
	// A where clause that does not parse names the location.
	r := get(t, v.shapeURL("table", "items", "offset", "-1", "where", "1 x 1"))
	if r.Status != 400 || string(r.Body) != `{"errors":{"where":["At location 17: syntax error at or near \"x\""]},"message":"Invalid request"}` {
		t.Errorf("bad where: %d %s", r.Status, r.Body)
	}
	// Nothing above created a shape: the only handle is the valid one's.
	again := get(t, v.shapeURL("table", "items", "offset", "-1"))
	if again.Header.Get("electric-handle") != handle {
		t.Errorf("the valid shape's handle changed: %s → %s", handle, again.Header.Get("electric-handle"))
	}
}

func TestSecretRequired(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY)`)
	v := startVolt(t, db, "VOLT_SECRET=s3cret")
	for _, kv := range [][]string{{"table", "items", "offset", "-1"}, {"table", "items", "offset", "-1", "secret", "wrong"}} {
		r := get(t, v.shapeURL(kv...))
		if r.Status != 401 || string(r.Body) != `{"message":"Unauthorized - Invalid API secret"}` {
			t.Errorf("%v: %d %s", kv, r.Status, r.Body)
		}
	}
	if r := get(t, v.shapeURL("table", "items", "offset", "-1", "secret", "s3cret")); r.Status != 200 {
		t.Errorf("with secret: %d %s", r.Status, r.Body)
	}
	if r := get(t, v.shapeURL("table", "items", "offset", "-1", "api_secret", "s3cret")); r.Status != 200 {
		t.Errorf("with legacy api_secret: %d %s", r.Status, r.Body)
	}
	if r := do(t, http.MethodOptions, v.shapeURL("table", "items")); r.Status != 204 {
		t.Errorf("OPTIONS must not need the secret: %d", r.Status)
	}
}
