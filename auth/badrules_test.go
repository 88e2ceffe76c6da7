package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/postgres"
)

// TestBadRules: each broken rules file fails to compile with one sentence
// naming the key at fault.
func TestBadRules(t *testing.T) {
	e := newEnv(t, nil, "")
	src := &postgres.Inspector{Pool: e.pool}
	cases := []struct{ rules, want string }{
		{`{"tables": {}, "extra": 1}`, `the top level: unknown key "extra" (known keys: tables, mutations)`},
		{`{"tables": {"todos": {"writ": {}}}}`, `tables.todos: unknown key "writ"`},
		{`{"tables": {"todos": {"read": {"colums": ["id"]}}}}`, `tables.todos.read: unknown key "colums" (known keys: columns, check)`},
		{`{"tables": {"todos": {"read": {"columns": ["title"]}}}}`, `tables.todos.read.columns: the primary key column "id" must be readable`},
		{`{"tables": {"todos": {"read": {"columns": []}}}}`, `tables.todos.read.columns is empty`},
		{`{"tables": {"todos": {"read": {"columns": ["id", "titel"]}}}}`, `tables.todos.read.columns: table public.todos has no column "titel"`},
		{`{"tables": {"todos": {"read": {"check": "ownr = $claims.sub"}}}}`, `tables.todos.read.check: At location 0: unknown reference ownr`},
		{`{"tables": {"todos": {"read": {"check": "owner_id = $1"}}}}`, `tables.todos.read.check: positional parameter $1`},
		{`{"tables": {"todos": {"read": {"check": ""}}}}`, `tables.todos.read.check is empty`},
		{`{"tables": {"volt.receipts": {"read": {}}}}`, `schema volt is volt's own`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "colums": ["id"]}}}}`, `tables.todos.write: unknown key "colums"`},
		{`{"tables": {"todos": {"write": {"operations": ["upsert"]}}}}`, `unknown operation "upsert"`},
		{`{"tables": {"todos": {"write": {"columns": ["id"]}}}}`, `tables.todos.write.operations is required`},
		{`{"tables": {"todos": {"write": {"operations": "insert"}}}}`, `operations must be a list of strings`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "columns": null}}}}`, `columns must be a list of strings`},
		{`{"tables": {"todoz": {"write": {"operations": ["insert"]}}}}`, `tables.todoz: table public.todoz does not exist`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "columns": ["titel"]}}}}`, `table public.todos has no column "titel"`},
		{`{"tables": {"items": {"write": {"operations": ["insert"], "columns": ["owner"]}}}}`, `column "owner" is generated`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "ownr = $claims.sub"}}}}`, `tables.todos.write.check: At location 0: unknown reference ownr`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner_id = $claims.sub AND org = 'x'"}}}}`, `invalid input syntax for type integer`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "org = $claims.org AND done = 3"}}}}`, `At location 27: operator does not exist: bool = int4`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner_id = $1"}}}}`, `positional parameter $1`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner_id = $claims"}}}}`, `write $claims.<name>`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner_id = $user.id"}}}}`, `unknown parameter $user`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner_id = 'x"}}}}`, `unterminated quoted string`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "owner_id = "}}}}`, `syntax error`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "title"}}}}`, `must return a boolean`},
		{`{"tables": {"todos": {"write": {"operations": ["insert"], "check": " "}}}}`, `check is empty`},
		{`{"tables": {"volt.clients": {"write": {"operations": ["insert"]}}}}`, `schema volt is volt's own`},
		{`{"tables": {"todos": {}, "public.todos": {}}}`, `two entries`},
		{`{"mutations": {"complete_all": {"roles": []}}}`, `mutations.complete_all: unknown key "roles" (it takes no keys yet)`},
		{`{"mutations": ["complete_all"]}`, `mutations must be a JSON object`},
		{"{\n  \"tables\": {\n    \"todos\": {,}\n}}", `line 3, column 15`},
		{`[]`, `the top level must be a JSON object`},
	}
	for _, c := range cases {
		_, err := auth.CompileRules(context.Background(), src, []byte(c.rules))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rules %s:\n  got  %v\n  want …%s…", c.rules, err, c.want)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error: %q", err)
		}
	}
}

// TestLoadRules names the file in its errors.
func TestLoadRules(t *testing.T) {
	e := newEnv(t, nil, "")
	src := &postgres.Inspector{Pool: e.pool}
	path := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(path, []byte(`{"tables": {"todos": {"write": {"operations": ["insert"], "check": "ownr = $claims.sub"}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := auth.LoadRules(context.Background(), src, path)
	if err == nil || !strings.HasPrefix(err.Error(), "rules file "+path+": tables.todos.write.check:") {
		t.Fatalf("LoadRules: %v", err)
	}
	if _, err := auth.LoadRules(context.Background(), src, path+".missing"); err == nil {
		t.Fatal("a missing rules file loaded")
	}
	r, err := auth.CompileRules(context.Background(), src, []byte(rulesJSON))
	if err != nil || !r.UsesClaims() || !r.MutationAllowed("complete_all") || r.MutationAllowed("purge") {
		t.Fatalf("rulesJSON: %v", err)
	}
}
