package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
)

// The read path's security holes (issue 15, items 4, 5, 6, 7 and 10),
// each reproduced against the real binary and Postgres.

const readsecSecret = "readsec-secret-0123456789"

// readsecPost sends a POST /v1/shape with a JSON body.
func readsecPost(t *testing.T, rawURL, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// readsecSubsetRows decodes a subset response's rows.
func readsecSubsetRows(t *testing.T, r response) []message {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("subset: %d %s", r.Status, r.Body)
	}
	var sb subsetBody
	if err := json.Unmarshal(r.Body, &sb); err != nil {
		t.Fatalf("subset body %s: %v", r.Body, err)
	}
	return sb.Data
}

// readsecColumns returns the columns of the rows' values, sorted.
func readsecColumns(msgs []message) string {
	set := map[string]bool{}
	for _, m := range msgs {
		for c := range m.Value {
			set[c] = true
		}
	}
	var out []string
	for c := range set {
		out = append(out, c)
	}
	return strings.Join(sortedStrings(out), ",")
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// TestReadsecPostBodyCannotChangeTheShape (item 4): a POST body carries
// only subset fields. Shape parameters in it (table, columns, where of the
// shape, replica, …) are refused with a 400 naming them, instead of
// overriding what the URL (and the proxy that wrote it) decided.
func TestReadsecPostBodyCannotChangeTheShape(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text, hidden text)`,
		`CREATE TABLE secrets (id int PRIMARY KEY, secret text)`,
		`INSERT INTO items VALUES (1, 'one', 'h1'), (2, 'two', 'h2')`,
		`INSERT INTO secrets VALUES (1, 'the-secret')`)
	v := startVolt(t, db, "VOLT_SECRET="+readsecSecret)
	u := v.shapeURL("table", "items", "columns", "id,title", "offset", "-1", "secret", readsecSecret)

	for _, c := range []struct{ body, field string }{
		{`{"table":"secrets"}`, "table"},
		{`{"where":"true","table":"secrets"}`, "table"},
		{`{"table":"volt.receipts"}`, "table"},
		{`{"columns":"id,title,hidden"}`, "columns"},
		{`{"where":"true","replica":"full"}`, "replica"},
		{`{"where":"true","secret":"x"}`, "secret"},
		{`{"subset":{"where":"true","table":"secrets"}}`, "table"},
		{`{"subset":{"where":"true"},"table":"secrets"}`, "table"},
		{`{"where":"true","queryable_columns":"id,title,hidden"}`, "queryable_columns"},
	} {
		r := readsecPost(t, u, c.body)
		var body struct {
			Errors map[string]any `json:"errors"`
		}
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != 400 || body.Errors[c.field] == nil || bytes.Contains(r.Body, []byte("the-secret")) || bytes.Contains(r.Body, []byte("h1")) {
			t.Errorf("body %s: %d %s; want 400 naming %q", c.body, r.Status, r.Body, c.field)
		}
	}

	// Subset fields still work, in both forms, with the TypeScript
	// client's where_expr / order_by_expr alongside.
	for _, body := range []string{
		`{"where":"id > $1","params":{"1":"0"},"order_by":"id","limit":5,"offset":0,"where_expr":{"type":"ref"},"order_by_expr":[]}`,
		`{"subset":{"where":"id > $1","params":{"1":0},"order_by":"id DESC"}}`,
	} {
		rows := readsecSubsetRows(t, readsecPost(t, u, body))
		if len(rows) != 2 || readsecColumns(rows) != "id,title" {
			t.Errorf("body %s: %d rows with columns %s; want 2 rows of id,title", body, len(rows), readsecColumns(rows))
		}
	}
}

// TestReadsecRuleColumnsAfterAddColumn (item 5): a read rule's column list
// is the allow-list, also for columns added while volt runs: they are not
// synced, not selectable, and cannot be filtered or ordered on.
func TestReadsecRuleColumnsAfterAddColumn(t *testing.T) {
	db, v := setupReadAuth(t)
	alice := "Bearer " + authToken(t, "alice", "https://issuer.test", time.Hour)
	pgtest.Exec(t, db, `ALTER TABLE todos ADD COLUMN ssn text`, `UPDATE todos SET ssn = 'ssn-of-' || id`)

	a := newFollower(v, "table", "todos")
	a.catchUpAs(t, alice)
	for k, row := range a.rows {
		if _, ok := row["ssn"]; ok {
			t.Fatalf("row %s has ssn: %v", k, dump(a.rows))
		}
	}
	refused := func(what string, r response) {
		t.Helper()
		if (r.Status != 400 && r.Status != 403) || bytes.Contains(r.Body, []byte("ssn-of-")) {
			t.Errorf("%s: %d %s; want 400 or 403", what, r.Status, r.Body)
		}
	}
	refused("columns with ssn", get(t, v.shapeURL("table", "todos", "offset", "-1", "columns", "id,ssn"), "Authorization", alice))
	refused("queryable_columns with ssn", get(t, v.shapeURL("table", "todos", "offset", "-1", "queryable_columns", "id,owner_id,ssn"), "Authorization", alice))
	refused("where on ssn", get(t, v.shapeURL("table", "todos", "offset", "-1", "where", "ssn = 'ssn-of-a1'"), "Authorization", alice))
	u := v.shapeURL("table", "todos", "offset", "-1")
	refused("subset where on ssn", readsecPost(t, u, `{"where":"ssn LIKE 'ssn-of-a%'"}`, "Authorization", alice))
	refused("subset order_by ssn", readsecPost(t, u, `{"where":"true","order_by":"ssn","limit":1}`, "Authorization", alice))
	refused("GET subset order_by ssn", get(t, v.shapeURL("table", "todos", "offset", "-1", "subset__order_by", "ssn", "subset__limit", "1"), "Authorization", alice))
	// The readable columns still work.
	rows := readsecSubsetRows(t, readsecPost(t, u, `{"where":"title <> ''","order_by":"title"}`, "Authorization", alice))
	if len(rows) != 2 || readsecColumns(rows) != "id,owner_id,title" {
		t.Errorf("subset on readable columns: %d rows of %s", len(rows), readsecColumns(rows))
	}
	// queryable_columns narrows a rule; the rule's check may use columns
	// outside it (it is the shape's where, not the client's).
	narrowed := newFollower(v, "table", "todos", "queryable_columns", "id,title")
	narrowed.catchUpAs(t, alice)
	if len(narrowed.rows) != 2 || len(narrowed.rows[`"public"."todos"/"a1"`]) != 2 {
		t.Errorf("queryable_columns without the check's column: %v", dump(narrowed.rows))
	}
	qf := newFollower(v, "table", "todos", "queryable_columns", "id,owner_id")
	qf.catchUpAs(t, alice)
	if len(qf.rows) != 2 || len(qf.rows[`"public"."todos"/"a1"`]) != 2 {
		t.Errorf("queryable_columns under a rule: %v", dump(qf.rows))
	}
	refused("subset where outside queryable_columns under a rule",
		readsecPost(t, v.shapeURL("table", "todos", "offset", "-1", "queryable_columns", "id,owner_id"), `{"where":"title <> ''"}`, "Authorization", alice))
}

// TestReadsecQueryableColumns (item 6): queryable_columns is the shape's
// column allow-list: the projection defaults to it, columns, the where
// clause and subsets' where and order_by may name only listed columns, it
// must include the primary key, and it is part of the shape.
func TestReadsecQueryableColumns(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE people (id int PRIMARY KEY, name text, team text, ssn text)`,
		`INSERT INTO people VALUES (1, 'ann', 'a', 'ssn-1'), (2, 'bo', 'b', 'ssn-2'), (3, 'cy', 'a', 'ssn-3')`)
	v := startVolt(t, db)
	q := []string{"table", "people", "queryable_columns", "id,name,team"}
	with := func(kv ...string) string { return v.shapeURL(append(append([]string{}, q...), kv...)...) }

	f := newFollower(v, q...)
	f.catchUp(t)
	if len(f.rows) != 3 {
		t.Fatalf("rows: %v", dump(f.rows))
	}
	for k, row := range f.rows {
		if _, ok := row["ssn"]; ok || len(row) != 3 {
			t.Fatalf("row %s: %v; want id, name and team only", k, dump(f.rows))
		}
	}
	narrow := get(t, with("offset", "-1", "columns", "id,name"))
	if narrow.Status != 200 || narrow.Header.Get("electric-handle") == f.handle {
		t.Fatalf("columns within the list: %d, handle %s (queryable-only shape %s)", narrow.Status, narrow.Header.Get("electric-handle"), f.handle)
	}
	other := get(t, v.shapeURL("table", "people", "queryable_columns", "id,name", "offset", "-1"))
	if other.Status != 200 || other.Header.Get("electric-handle") == f.handle {
		t.Fatalf("another list: %d, same handle %v", other.Status, other.Header.Get("electric-handle") == f.handle)
	}

	bad := func(what string, r response, field string) {
		t.Helper()
		var body struct {
			Errors map[string]any `json:"errors"`
		}
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != 400 || body.Errors[field] == nil || !bytes.Contains(r.Body, []byte("ssn")) || bytes.Contains(r.Body, []byte("ssn-")) {
			t.Errorf("%s: %d %s; want 400 under %q naming ssn", what, r.Status, r.Body, field)
		}
	}
	bad("columns outside", get(t, with("offset", "-1", "columns", "id,ssn")), "columns")
	// The shape's own where is set by whoever sets the list (Electric
	// limits only what clients choose: projection and subsets).
	if r := get(t, with("offset", "-1", "where", "ssn = 'ssn-1'")); r.Status != 200 || bytes.Contains(r.Body, []byte("ssn-1")) {
		t.Errorf("where outside the list: %d %s; want 200 without the ssn column", r.Status, r.Body)
	}
	bad("subset where outside", readsecPost(t, with("offset", "-1"), `{"where":"ssn = 'ssn-1'"}`), "subset")
	bad("subset order_by outside", readsecPost(t, with("offset", "-1"), `{"where":"true","order_by":"ssn","limit":1}`), "subset")
	bad("GET subset where outside", get(t, with("offset", "-1", "subset__where", "ssn <> ''")), "subset")
	bad("unknown column listed", get(t, v.shapeURL("table", "people", "queryable_columns", "id,ssnx", "offset", "-1")), "queryable_columns")
	noKey := get(t, v.shapeURL("table", "people", "queryable_columns", "name,ssn", "offset", "-1"))
	if noKey.Status != 400 || !bytes.Contains(noKey.Body, []byte("primary key")) || !bytes.Contains(noKey.Body, []byte(`"queryable_columns"`)) {
		t.Errorf("without the key: %d %s", noKey.Status, noKey.Body)
	}
	// Listed columns can be filtered and ordered on.
	rows := readsecSubsetRows(t, readsecPost(t, with("offset", "-1"), `{"where":"team = 'a'","order_by":"name DESC"}`))
	if len(rows) != 2 || *rows[0].Value["name"] != "cy" || readsecColumns(rows) != "id,name,team" {
		t.Errorf("subset within the list: %v", rows)
	}
	wf := newFollower(v, append(append([]string{}, q...), "where", "team = 'b'")...)
	wf.catchUp(t)
	if len(wf.rows) != 1 || *wf.rows[`"public"."people"/"2"`]["name"] != "bo" {
		t.Errorf("where within the list: %v", dump(wf.rows))
	}
}

// TestReadsecClientErrorsAre400 (item 7): a shape whose query Postgres
// refuses because of the request (a cast that fails on a row, division by
// zero, a NUL byte, a system table) is a 400 with the problem, not a 503
// the clients retry forever; row values stay out of the log at ERROR, and
// the shape does not stay behind.
func TestReadsecClientErrorsAre400(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE items (id int PRIMARY KEY, title text, n int)`,
		`INSERT INTO items VALUES (1, 'row-value-secret', 3)`)
	v := startVolt(t, db)
	for _, c := range []struct {
		what   string
		url    string
		field  string
		inBody string
	}{
		{"cast fails on a row", v.shapeURL("table", "items", "offset", "-1", "where", "title::int4 = 1"), "where", "invalid input syntax"},
		{"division by zero", v.shapeURL("table", "items", "offset", "-1", "where", "n / 0 = 1"), "where", "division by zero"},
		{"modulo zero", v.shapeURL("table", "items", "offset", "-1", "where", "id % 0 = 1"), "where", "division by zero"},
		{"NUL in table", v.URL + "/v1/shape?table=items%00&offset=-1", "table", "NUL"},
		{"NUL in where", v.URL + "/v1/shape?table=items&offset=-1&where=title%20=%20'a%00b'", "where", "NUL"},
		{"invalid UTF-8 in table", v.URL + "/v1/shape?table=items%ff&offset=-1", "table", "UTF-8"},
		{"pg_catalog", v.shapeURL("table", "pg_catalog.pg_authid", "offset", "-1"), "table", "system table"},
		{"information_schema", v.shapeURL("table", "information_schema.tables", "offset", "-1"), "table", "system table"},
		{"volt's clients", v.shapeURL("table", "volt.clients", "offset", "-1"), "table", "system table"},
	} {
		for attempt := 0; attempt < 2; attempt++ { // the second finds no failed shape left behind
			r := get(t, c.url)
			var body struct {
				Errors map[string][]string `json:"errors"`
			}
			_ = json.Unmarshal(r.Body, &body)
			if r.Status != 400 || r.Header.Get("retry-after") != "" || len(body.Errors[c.field]) == 0 || !strings.Contains(strings.Join(body.Errors[c.field], " "), c.inBody) {
				t.Errorf("%s (attempt %d): %d retry-after %q %s; want 400 under %q with %q", c.what, attempt, r.Status, r.Header.Get("retry-after"), r.Body, c.field, c.inBody)
			}
		}
	}
	// Subsets: the same errors under subset.where.
	now := get(t, v.shapeURL("table", "items", "offset", "now"))
	if now.Status != 200 {
		t.Fatalf("offset=now: %d %s", now.Status, now.Body)
	}
	// A failure after some rows (here the 201st, in a sequential scan) is
	// still an error, not a 200 cut short, while the rows fit volt's
	// response buffer.
	pgtest.Exec(t, db, `INSERT INTO items SELECT g, g::text, g FROM generate_series(2, 201) g`,
		`INSERT INTO items VALUES (202, 'not-a-number', 1)`)
	for _, body := range []string{`{"where":"title::int4 = 1"}`, `{"where":"n / 0 = 1","order_by":"id"}`, `{"where":"n % (n - 3) = 0"}`,
		`{"where":"id > 1 AND title::int4 > 0"}`} {
		r := readsecPost(t, v.shapeURL("table", "items", "offset", "-1"), body)
		if r.Status != 400 || r.Header.Get("retry-after") != "" || !bytes.Contains(r.Body, []byte(`"subset"`)) {
			t.Errorf("subset %s: %d %s; want 400 under subset", body, r.Status, r.Body)
		}
	}
	// The shapes that failed are gone: only the offset=now shape is left.
	st := get(t, v.URL+"/v1/stats")
	var stats struct {
		Shapes int `json:"shapes"`
	}
	if err := json.Unmarshal(st.Body, &stats); err != nil || stats.Shapes != 1 {
		t.Errorf("stats after failed shapes: %s (%v); want 1 shape", st.Body, err)
	}
	for _, line := range strings.Split(v.Log(), "\n") {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, "row-value-secret") {
			t.Errorf("row value logged at ERROR: %s", line)
		}
	}
}

// TestReadsecClientErrorsUnderRules (item 7): under read rules the
// Postgres message, which may quote a row the rule hides, is withheld;
// system tables are refused before Postgres is asked.
func TestReadsecClientErrorsUnderRules(t *testing.T) {
	_, v := setupReadAuth(t, "VOLT_SECRET="+readSecret)
	alice := "Bearer " + authToken(t, "alice", "https://issuer.test", time.Hour)
	r := get(t, v.shapeURL("table", "todos", "offset", "-1", "where", "title::int4 = 1"), "Authorization", alice)
	if r.Status != 400 || bytes.Contains(r.Body, []byte("b one")) || bytes.Contains(r.Body, []byte("a one")) || !bytes.Contains(r.Body, []byte("22P02")) {
		t.Errorf("cast failing under rules: %d %s; want 400 with the SQLSTATE and no row value", r.Status, r.Body)
	}
	for _, table := range []string{"pg_catalog.pg_authid", "volt.clients"} {
		expectStatus(t, table, get(t, v.shapeURL("table", table, "offset", "-1"), "Authorization", alice), 403, "not readable")
	}
	expectStatus(t, "pg_authid with the secret", get(t, v.shapeURL("table", "pg_catalog.pg_authid", "offset", "-1", "secret", readSecret)), 400, "system table")
}

// readsecPid finds the volt process listening on v's port.
func readsecPid(t *testing.T, v *volt) int {
	t.Helper()
	want := []byte("VOLT_PORT=" + strconv.Itoa(v.Port) + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(d + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		if cmd, _ := os.ReadFile(d + "/cmdline"); bytes.Contains(cmd, []byte("serve")) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	t.Fatalf("no volt process for port %d", v.Port)
	return 0
}

// readsecMemKB reads a field (VmHWM, VmRSS) of /proc/<pid>/status in kB.
func readsecMemKB(t *testing.T, pid int, field string) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestReadsecSubsetsStream (item 10): subset responses stream from the
// query. Four concurrent where=true subsets of a ~90 MB table raise volt's
// peak RSS by a bounded amount (they used to hold every row in memory:
// several hundred MB here), and every row arrives.
func TestReadsecSubsetsStream(t *testing.T) {
	const rows = 300_000
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE big (id int PRIMARY KEY, pad text)`,
		fmt.Sprintf(`INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, %d) g`, rows))
	v := startVolt(t, db)
	now := get(t, v.shapeURL("table", "big", "offset", "now", "log", "changes_only"))
	if now.Status != 200 {
		t.Fatalf("offset=now: %d %s", now.Status, now.Body)
	}
	pid := readsecPid(t, v)
	// One small subset first, so that what one request costs anyway
	// (connections, buffers) is in the baseline.
	readsecSubsetRows(t, readsecPost(t, v.shapeURL("table", "big", "offset", "now", "log", "changes_only"), `{"where":"id < 10"}`))
	before := readsecMemKB(t, pid, "VmHWM")

	const clients = 4
	var wg sync.WaitGroup
	counts := make([]int, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, v.shapeURL("table", "big", "offset", "now", "log", "changes_only"), strings.NewReader(`{"where":"true"}`))
			req.Header.Set("content-type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				errs[i] = fmt.Errorf("status %d: %s", resp.StatusCode, b)
				return
			}
			// Count rows without holding the body: each row carries one
			// snapshot_mark.
			br := bufio.NewReaderSize(resp.Body, 64<<10)
			mark := []byte(`"snapshot_mark":`)
			matched := 0
			for {
				c, err := br.ReadByte()
				if err == io.EOF {
					break
				}
				if err != nil {
					errs[i] = err
					return
				}
				if c == mark[matched] {
					matched++
					if matched == len(mark) {
						counts[i]++
						matched = 0
					}
				} else if c == mark[0] {
					matched = 1
				} else {
					matched = 0
				}
			}
		}()
	}
	wg.Wait()
	after := readsecMemKB(t, pid, "VmHWM")
	for i := range clients {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if counts[i] != rows+1 { // the rows and the metadata
			t.Fatalf("client %d: %d marks; want %d rows and the metadata's", i, counts[i], rows)
		}
	}
	growth := after - before
	t.Logf("volt peak RSS %d kB before, %d kB after %d concurrent subsets of %d rows (growth %d kB)", before, after, clients, rows, growth)
	// Held in memory, each subset cost more than its ~100 MB of JSON; a
	// stream costs its buffers. 48 MB for four is generous for a stream
	// (garbage the collector has not reclaimed yet included).
	if growth > 48<<10 {
		t.Fatalf("peak RSS grew by %d kB for %d concurrent subsets; want at most %d kB", growth, clients, 48<<10)
	}
}

// readsecActiveQueries counts Postgres backends running (or holding a
// transaction open for) a query on table big.
func readsecActiveQueries(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND state <> 'idle' AND query LIKE '%FROM "public"."big"%'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReadsecSubsetStall (item 10): a subset streams under the stall
// timeout. While a client reads nothing, its query waits on it (rows are
// not gathered in memory ahead of the client), and at the stall timeout
// the client is dropped and the query ends, releasing its connection and
// snapshot.
func TestReadsecSubsetStall(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE big (id int PRIMARY KEY, pad text)`,
		`INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 200000) g`)
	v := startVolt(t, db, "VOLT_STALL_TIMEOUT=4s")
	u := v.shapeURL("table", "big", "offset", "now", "log", "changes_only")
	if r := get(t, u); r.Status != 200 {
		t.Fatalf("offset=now: %d %s", r.Status, r.Body)
	}
	pg, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())

	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(v.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"where":"true"}`
	path := strings.TrimPrefix(u, v.URL)
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: volt\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("status line %q: %v", status, err)
	}
	// Now read nothing more. The query is held up by the client...
	start := time.Now()
	if n := readsecActiveQueries(t, pg); n != 1 {
		t.Fatalf("%d subset queries running while the client stalls; want 1 (a query that finished ahead of the client gathered its rows in memory)", n)
	}
	// ... until the stall timeout drops the client and ends it.
	for readsecActiveQueries(t, pg) != 0 {
		if time.Since(start) > 60*time.Second {
			t.Fatal("the subset query still runs a minute after its client stopped reading")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(v.Log(), "dropped a client that stopped reading") {
		t.Errorf("volt did not log the dropped client")
	}
	// volt closed the connection: reading what is left ends, it does not
	// time out.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ne net.Error
	if _, err := io.Copy(io.Discard, br); errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("volt kept the stalled connection open: %v", err)
	}
}

// TestReadsecQueryableColumnsAfterRestart (item 6): a queryable_columns
// shape restored from the catalog keeps its handle and its columns; live
// changes after the restart carry only the listed columns.
func TestReadsecQueryableColumnsAfterRestart(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE people (id int PRIMARY KEY, name text, ssn text)`,
		`INSERT INTO people VALUES (1, 'ann', 'ssn-1')`)
	v := startVolt(t, db, "VOLT_LONG_POLL_TIMEOUT=2s")
	f := newFollower(v, "table", "people", "queryable_columns", "id,name")
	f.catchUp(t)
	handle := f.handle
	v.Stop()
	v.Restart()
	pgtest.Exec(t, db, `INSERT INTO people VALUES (2, 'bo', 'ssn-2')`, `UPDATE people SET ssn = 'ssn-1b', name = 'ann b' WHERE id = 1`)
	f.pollUntil(t, "the changes after the restart", func(rows map[string]map[string]*string) bool {
		r := rows[`"public"."people"/"1"`]
		return len(rows) == 2 && r != nil && r["name"] != nil && *r["name"] == "ann b"
	})
	if f.handle != handle {
		t.Errorf("handle %s after the restart; was %s", f.handle, handle)
	}
	for k, row := range f.rows {
		if _, ok := row["ssn"]; ok {
			t.Fatalf("row %s has ssn after the restart: %v", k, dump(f.rows))
		}
	}
	if r := readsecPost(t, v.shapeURL("table", "people", "queryable_columns", "id,name", "offset", "-1"), `{"where":"ssn <> ''"}`); r.Status != 400 {
		t.Errorf("subset on ssn after the restart: %d %s", r.Status, r.Body)
	}
}
