package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// A subset request runs through the cache: its rows in order with the
// snapshot's identity, a bad subset is a 400 naming the field before any
// query, and HEAD answers the headers only.
func TestSubsetThroughCache(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, owner text)`,
		`INSERT INTO items SELECT g, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END FROM generate_series(1, 10) g`)
	st := startStack(t, db, Config{LongPollTimeout: time.Second})
	first := mustFetch(t, st.shapeURL("table", "items", "offset", "-1", "where", "owner = 'even'"))
	if first.status != 200 {
		t.Fatalf("shape: %d %s", first.status, first.body)
	}
	handle := first.header.Get(volt.HeaderHandle)
	subsetURL := func(kv ...string) string {
		return st.shapeURL(append([]string{"table", "items", "offset", "-1", "where", "owner = 'even'"}, kv...)...)
	}

	r := mustFetch(t, subsetURL("subset__where", "id > $1", "subset__params", `{"1":"2"}`, "subset__order_by", "id DESC", "subset__limit", "2", "subset__offset", "1"))
	if r.status != 200 || r.header.Get(volt.HeaderSnapshot) != "true" || r.header.Get(volt.HeaderHandle) != handle {
		t.Fatalf("subset: %d %v %s", r.status, r.header, r.body)
	}
	var body struct {
		Metadata struct {
			Xmin, Xmax  string
			XipList     []string `json:"xip_list"`
			DatabaseLSN string   `json:"database_lsn"`
		}
		Data []struct {
			Value map[string]string
		}
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	// even ids > 2, descending: 10, 8, 6, 4; offset 1, limit 2.
	if len(body.Data) != 2 || body.Data[0].Value["id"] != "8" || body.Data[1].Value["id"] != "6" {
		t.Fatalf("subset rows: %s", r.body)
	}
	if _, err := volt.ParseSnapshot(body.Metadata.Xmin, body.Metadata.Xmax, body.Metadata.XipList); err != nil || body.Metadata.DatabaseLSN == "" {
		t.Fatalf("subset metadata: %s (%v)", r.body, err)
	}

	for _, tc := range []struct {
		kv    []string
		field string
	}{
		{[]string{"subset__limit", "2"}, "order_by"},
		{[]string{"subset__where", "nope = 1"}, "where"},
		{[]string{"subset__order_by", "nope"}, "order_by"},
	} {
		r := mustFetch(t, subsetURL(tc.kv...))
		var e struct {
			Errors struct {
				Subset map[string][]string
			}
		}
		if r.status != 400 || json.Unmarshal(r.body, &e) != nil || len(e.Errors.Subset[tc.field]) == 0 || r.header.Get(volt.HeaderSnapshot) != "" {
			t.Errorf("%v: %d %s, want a 400 naming subset %s", tc.kv, r.status, r.body, tc.field)
		}
	}

	req, _ := http.NewRequest(http.MethodHead, subsetURL("subset__where", "id > 2"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(volt.HeaderSnapshot) != "true" || resp.Header.Get(volt.HeaderOffset) == "" {
		t.Fatalf("HEAD subset: %d %v", resp.StatusCode, resp.Header)
	}
}
