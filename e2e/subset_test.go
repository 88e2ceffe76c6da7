package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

type subsetBody struct {
	Metadata struct {
		Xmin, Xmax   string
		XipList      []string `json:"xip_list"`
		SnapshotMark int64    `json:"snapshot_mark"`
		DatabaseLSN  string   `json:"database_lsn"`
	}
	Data []message
}

func postJSON(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestSubsetSnapshots(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, owner text, rank int)`,
		`INSERT INTO items SELECT g, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, 100 - g FROM generate_series(1, 20) g`)
	v := startVolt(t, db)
	// An on-demand collection: changes only, then pages of rows on request.
	now := get(t, v.shapeURL("table", "items", "offset", "now", "log", "changes_only"))
	if now.Status != 200 {
		t.Fatalf("changes_only now: %d %s", now.Status, now.Body)
	}
	h := now.Header.Get("electric-handle")

	r := get(t, v.shapeURL("table", "items", "offset", "now", "log", "changes_only",
		"subset__where", "owner = $1", "subset__params", `{"1":"even"}`, "subset__order_by", "rank DESC", "subset__limit", "3"))
	if r.Status != 200 || r.Header.Get("electric-snapshot") != "true" || r.Header.Get("cache-control") != "no-cache" || r.Header.Get("electric-handle") != h {
		t.Fatalf("subset GET: %d %v %s", r.Status, r.Header, r.Body)
	}
	var sb subsetBody
	if err := json.Unmarshal(r.Body, &sb); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range sb.Data {
		ids = append(ids, *m.Value["id"])
		if m.Headers["snapshot_mark"].(float64) != float64(sb.Metadata.SnapshotMark) {
			t.Errorf("row mark %v != metadata mark %d", m.Headers["snapshot_mark"], sb.Metadata.SnapshotMark)
		}
	}
	if strings.Join(ids, ",") != "2,4,6" || sb.Metadata.DatabaseLSN == "" || sb.Metadata.Xmax == "" {
		t.Fatalf("subset rows %v, metadata %+v", ids, sb.Metadata)
	}

	// The same through POST, as the TypeScript client sends it.
	status, hdr, body := postJSON(t, v.shapeURL("table", "items", "offset", "now", "log", "changes_only"),
		`{"where":"rank < $1","params":{"1":85},"order_by":"id","limit":2,"offset":1}`)
	if status != 200 || hdr.Get("cache-control") != "no-cache" {
		t.Fatalf("subset POST: %d %s", status, body)
	}
	sb = subsetBody{}
	_ = json.Unmarshal(body, &sb)
	if len(sb.Data) != 2 || *sb.Data[0].Value["id"] != "17" || *sb.Data[1].Value["id"] != "18" {
		t.Fatalf("POST subset rows: %s", body)
	}

	for name, tc := range map[string]struct {
		kv   []string
		want string
	}{
		"limit without order_by": {[]string{"subset__limit", "2"}, `{"errors":{"subset":{"order_by":["order_by is required when limit or offset is present"]}},"message":"Invalid request"}`},
		"expression in order_by": {[]string{"subset__order_by", "lower(owner)"}, `expressions are not allowed in ORDER BY clauses`},
		"unknown column":         {[]string{"subset__where", "nope = 1"}, `unknown reference`},
	} {
		kv := append([]string{"table", "items", "offset", "now", "log", "changes_only"}, tc.kv...)
		r := get(t, v.shapeURL(kv...))
		if r.Status != 400 || !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	for body, want := range map[string]int{`[1]`: 400, `{"where":`: 400, strings.Repeat(" ", 2<<20): 413} {
		if status, _, b := postJSON(t, v.shapeURL("table", "items", "offset", "now"), body); status != want {
			t.Errorf("POST %.20q: %d %s, want %d", body, status, b, want)
		}
	}
}
