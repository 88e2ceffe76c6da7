package e2e

import (
	"strconv"
	"testing"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestValueEncoding checks every common type is sent as Postgres' own text
// output, identically in the snapshot and in the live log.
func TestValueEncoding(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TABLE typed (
			id int8 PRIMARY KEY, i2 int2, i4 int4, f4 float4, f8 float8, num numeric(20,5), txt text, vc varchar(10), bp char(5),
			b bool, u uuid, ts timestamp, tstz timestamptz, d date, tm time, iv interval, j json, jb jsonb, by bytea,
			ia int8[], ta text[], ba bool[], m mood, ma mood[], big text)`)
	insert := func(id int) string {
		return `INSERT INTO typed VALUES (` + itoa(id) + `, -32768, 2147483647, 1.5, 4.5e-300, -12345.67891, 'héllo "quoted" \ back/slash' || chr(10) || 'line', 'short', 'ab',
			true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29 13:45:56.789', '2024-02-29 13:45:56.789+05:30', '0001-01-01', '23:59:59.999999', '1 year 2 mons 3 days 04:05:06.7',
			'{"a": [1, 2.50, "x"]}', '{"b": {"c": null}, "a": 1}', '\x0001fffe', '{1,NULL,-3}', '{"a b","c\"d",NULL}', '{t,f}', 'happy', '{sad,ok}', repeat('toast', 5000))`
	}
	pgtest.Exec(t, db, insert(1), `INSERT INTO typed (id) VALUES (2)`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=2s")
	f := newFollower(v, "table", "typed")
	f.catchUp(t)
	const q = `SELECT * FROM typed`
	if d := diffRows(f.rows, pgRows(t, db, "typed", 1, q)); d != "" {
		t.Fatalf("snapshot values differ from Postgres: %s", d)
	}
	pgtest.Exec(t, db, insert(3), `INSERT INTO typed (id) VALUES (4)`, `UPDATE typed SET i2 = 7 WHERE id = 1`)
	want := pgRows(t, db, "typed", 1, q)
	f.pollUntil(t, "live values", func(rows map[string]map[string]*string) bool { return diffRows(rows, want) == "" })
	schema := get(t, v.shapeURL("table", "typed", "offset", "-1")).Header.Get("electric-schema")
	for _, want := range []string{`"id":{"not_null":true,"pk_index":0,"type":"int8"}`, `"ia":{"dims":1,"type":"int8"}`, `"vc":{"max_length":10,"type":"varchar"}`,
		`"bp":{"length":5,"type":"bpchar"}`, `"num":{"precision":20,"scale":5,"type":"numeric"}`, `"m":{"type":"mood"}`} {
		if !contains(schema, want) {
			t.Errorf("electric-schema lacks %s: %s", want, schema)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
