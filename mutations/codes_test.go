package mutations_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

func TestInvalid(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos, `CREATE TABLE nopk (a int)`, `CREATE TABLE g (id int PRIMARY KEY, x int, y int GENERATED ALWAYS AS (x * 2) STORED)`)
	cases := []struct {
		name string
		m    volt.Mutation
		want string // in the message
	}{
		{"unknown op", volt.Mutation{Op: "upsert", Table: "todos"}, "unknown op"},
		{"no op nor name", volt.Mutation{Table: "todos"}, "unknown op"},
		{"op and name", volt.Mutation{Op: "insert", Table: "todos", Name: "x"}, "not both"},
		{"no table", volt.Mutation{Op: "insert"}, "needs a table"},
		{"unknown table", ins("nope", row{"id": 1}), "does not exist"},
		{"bad table name", ins(`a.b.c`, row{"id": 1}), "too many dots"},
		{"unknown column", ins("todos", row{"id": "x", "title": "t", "nope": 1}), `no column "nope"`},
		{"wrong type", ins("todos", row{"id": "x", "title": "t", "n": "seven"}), "invalid input syntax"},
		{"object for text", ins("todos", row{"id": "x", "title": row{}}), "json or jsonb"},
		{"update without key", upd("todos", nil, row{"done": true}), "primary key"},
		{"update with partial key", upd("todos", row{"title": "x"}, row{"done": true}), "primary key"},
		{"delete without pk", del("nopk", row{"a": 1}), "no primary key"},
		{"generated column", ins("g", row{"id": 1, "x": 1, "y": 2}), "generated"},
		{"unknown named", named("nope", `{}`), "unknown mutation"},
		{"named with table", volt.Mutation{Name: "x", Table: "todos"}, "takes args"},
	}
	for i, c := range cases {
		r := e.one("c", int64(i+1), ins("todos", row{"id": "ok", "title": "t"}), c.m)
		wantRejected(t, r, volt.CodeInvalid)
		if !strings.Contains(r.Message, c.want) {
			t.Errorf("%s: message %q lacks %q", c.name, r.Message, c.want)
		}
	}
	if n := e.count(`SELECT count(*) FROM todos`); n != 0 {
		t.Fatalf("invalid transactions wrote %d rows", n)
	}
	if n := e.count(`SELECT count(*) FROM volt.receipts WHERE status = 'rejected' AND code = 'invalid'`); n != len(cases) {
		t.Fatalf("%d receipts for %d rejections", n, len(cases))
	}
}

func TestForbiddenByDefaultPolicy(t *testing.T) {
	e := newEnv(t, mutations.Options{}, todos, `CREATE SCHEMA private`, `CREATE TABLE private.t (id int PRIMARY KEY)`)
	wantRejected(t, e.one("c", 1, ins("private.t", row{"id": 1})), volt.CodeForbidden)
	wantRejected(t, e.one("c", 2, ins("volt.receipts", row{"client_id": "c", "seq": 99, "status": "accepted"})), volt.CodeForbidden)
	wantRejected(t, e.one("c", 3, del("volt.clients", row{"client_id": "c"})), volt.CodeForbidden)
	wantAccepted(t, e.one("c", 4, ins("todos", row{"id": "a", "title": "t"})))
}

func TestConflict(t *testing.T) {
	e := newEnv(t, mutations.Options{Checked: map[string]bool{"todos": true}}, todos,
		`CREATE TABLE lww (id int PRIMARY KEY, v text)`,
		`INSERT INTO todos (id, title, meta) VALUES ('a', 'server title', '{"x": 1}')`, `INSERT INTO lww VALUES (1, 'server')`)
	// Checked table: the original no longer holds.
	r := e.one("c", 1, updFrom("todos", row{"id": "a"}, row{"title": "mine"}, row{"title": "old title"}))
	wantRejected(t, r, volt.CodeConflict)
	var cur map[string]any
	if err := json.Unmarshal(r.Row, &cur); err != nil || cur["title"] != "server title" {
		t.Fatalf("conflict row %s: %v", r.Row, err)
	}
	// The original holds (numbers, json compared by value): accepted.
	wantAccepted(t, e.one("c", 2, updFrom("todos", row{"id": "a"}, row{"title": "mine"}, row{"title": "server title", "done": false, "n": nil, "meta": row{"x": 1}})))
	// Delete with a stale original.
	wantRejected(t, e.one("c", 3, volt.Mutation{Op: "delete", Table: "todos", Key: row{"id": "a"}, Original: row{"title": "server title"}}), volt.CodeConflict)
	// Missing rows: conflict with row null, in both modes.
	for i, m := range []volt.Mutation{upd("todos", row{"id": "zz"}, row{"done": true}), del("todos", row{"id": "zz"}), upd("lww", row{"id": 2}, row{"v": "x"}), del("lww", row{"id": 2})} {
		r := e.one("c", int64(4+i), m)
		wantRejected(t, r, volt.CodeConflict)
		if string(r.Row) != "null" {
			t.Fatalf("missing row: row = %s", r.Row)
		}
	}
	// Last-write-wins table: a stale original is ignored.
	wantAccepted(t, e.one("c", 8, updFrom("lww", row{"id": 1}, row{"v": "mine"}, row{"v": "stale"})))
	if n := e.count(`SELECT count(*) FROM lww WHERE v = 'mine'`); n != 1 {
		t.Fatal("lww update lost")
	}
	// The replay of a conflict returns the stored row.
	rp := e.one("c", 1, updFrom("todos", row{"id": "a"}, row{"title": "mine"}, row{"title": "old title"}))
	if !rp.Replayed || rp.Code != volt.CodeConflict || string(rp.Row) != string(r.Row) && len(rp.Row) == 0 {
		t.Fatalf("replayed conflict: %+v", rp)
	}
}

func TestConstraint(t *testing.T) {
	e := newEnv(t, mutations.Options{},
		`CREATE TABLE p (id int PRIMARY KEY)`,
		`CREATE TABLE c (id int PRIMARY KEY, p int CONSTRAINT c_p_fk REFERENCES p, email text CONSTRAINT c_email_key UNIQUE, n int CONSTRAINT c_n_positive CHECK (n > 0), name text NOT NULL DEFAULT 'x')`,
		`INSERT INTO p VALUES (1)`, `INSERT INTO c (id, email) VALUES (1, 'taken')`)
	cases := []struct {
		m    volt.Mutation
		want string
	}{
		{ins("c", row{"id": 1}), "c_pkey"},
		{ins("c", row{"id": 2, "email": "taken"}), "c_email_key"},
		{ins("c", row{"id": 3, "p": 99}), "c_p_fk"},
		{ins("c", row{"id": 4, "n": -1}), "c_n_positive"},
		{ins("c", row{"id": 5, "name": nil}), "name"},
		{upd("c", row{"id": 1}, row{"p": 2}), "c_p_fk"},
	}
	for i, c := range cases {
		r := e.one("c", int64(i+1), c.m)
		wantRejected(t, r, volt.CodeConstraint)
		if r.Constraint != c.want {
			t.Errorf("case %d: constraint %q, want %q (%s)", i, r.Constraint, c.want, r.Message)
		}
		rp := e.one("c", int64(i+1), c.m)
		if !rp.Replayed || rp.Constraint != c.want || rp.Code != volt.CodeConstraint {
			t.Errorf("case %d: replay %+v", i, rp)
		}
	}
	if n := e.count(`SELECT count(*) FROM c`); n != 1 {
		t.Fatalf("%d rows", n)
	}
}
