package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/shapecache"
)

func TestStats(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, title text)`, `INSERT INTO items SELECT g, 't' FROM generate_series(1, 10) g`)
	st := startStack(t, db, Config{LongPollTimeout: time.Second})
	first := mustFetch(t, st.shapeURL("table", "items", "offset", "-1", "where", "id <= 4"))
	handle := first.header.Get(volt.HeaderHandle)

	var all shapecache.Stats
	if r := mustFetch(t, st.url+"/v1/stats?disk=true"); r.status != 200 || json.Unmarshal(r.body, &all) != nil {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	if all.Shapes != 1 || all.DiskBytes == nil || *all.DiskBytes == 0 {
		t.Fatalf("stats: %+v", all)
	}
	var one shapecache.ShapeStats
	if r := mustFetch(t, st.url+"/v1/stats?handle="+handle); r.status != 200 || json.Unmarshal(r.body, &one) != nil {
		t.Fatalf("shape stats: %d %s", r.status, r.body)
	}
	if one.Handle != handle || one.Rows != 4 || one.Messages != 4 || one.DiskBytes == 0 || one.Where != "id <= 4" {
		t.Fatalf("shape stats: %+v", one)
	}
	if r := mustFetch(t, st.url+"/v1/stats?handle=nope"); r.status != 404 {
		t.Fatalf("unknown handle: %d %s", r.status, r.body)
	}
}
