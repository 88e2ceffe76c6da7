package e2e

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

var displaySettings = []string{
	"SET bytea_output = 'hex'", "SET DateStyle = 'ISO, DMY'", "SET TimeZone = 'UTC'",
	"SET extra_float_digits = 1", "SET IntervalStyle = 'iso_8601'",
}

// pgRows runs query (which must select the key columns first, in key
// order, as named by keyCols) and returns the rows keyed as volt keys them,
// with every value in Postgres' text output (booleans as true/false).
func pgRows(t *testing.T, db, table string, keyCols int, query string) map[string]map[string]*string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range displaySettings {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.Query(ctx, query, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	out := map[string]map[string]*string{}
	fields := rows.FieldDescriptions()
	for rows.Next() {
		raw := rows.RawValues()
		row := map[string]*string{}
		key := `"public"."` + table + `"`
		for i, f := range fields {
			var v *string
			if raw[i] != nil {
				s := string(raw[i])
				if f.DataTypeOID == 16 {
					s = map[string]string{"t": "true", "f": "false"}[s]
				}
				v = &s
			}
			row[f.Name] = v
			if i < keyCols {
				key += `/"` + strings.ReplaceAll(*v, "/", "//") + `"`
			}
		}
		out[key] = row
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// diffRows describes how got differs from want ("" when equal).
func diffRows(got, want map[string]map[string]*string) string {
	var d []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			d = append(d, "missing "+k)
			continue
		}
		for c, wv := range w {
			gv, ok := g[c]
			if !ok || (gv == nil) != (wv == nil) || (gv != nil && *gv != *wv) {
				d = append(d, k+"."+c+": got "+str(gv)+" want "+str(wv))
			}
		}
		for c := range g {
			if _, ok := w[c]; !ok {
				d = append(d, k+": unexpected column "+c)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "unexpected "+k)
		}
	}
	sort.Strings(d)
	if len(d) > 10 {
		d = append(d[:10], "…")
	}
	return strings.Join(d, "; ")
}

func str(p *string) string {
	if p == nil {
		return "NULL"
	}
	return *p
}
