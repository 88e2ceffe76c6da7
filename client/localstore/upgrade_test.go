package localstore

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// TestUpgradeFromV1 opens a store written by the first version of the
// schema (testdata/v1store.sql, a dump of one with a sent-and-accepted
// transaction, a sent one, unsent ones, a local insert, update and delete
// and an overlay keyed by an integer) and checks that nothing pending is
// lost and that the store goes on from where it was.
func TestUpgradeFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	dump, err := os.ReadFile("testdata/v1store.sql")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(string(dump)); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := Open(path, Options{OnRollback: func(r Rollback) { t.Errorf("rollback: %+v", r) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	if db.ClientID() != "ls-v1fixture" {
		t.Fatalf("client id %q", db.ClientID())
	}
	check := func(query, want string) {
		t.Helper()
		if got := queryRows(t, db, query); got != want {
			t.Fatalf("%s:\n got %s\nwant %s", query, got, want)
		}
	}
	check(`SELECT v FROM _volt_meta WHERE k = 'schema'`, "4")
	check(`SELECT ltx, id, tbl, op, key, coalesce(vals, '') FROM _volt_outbox ORDER BY ltx, id`,
		`1|1|todos|insert|{"id":"c"}|{"id":"c","done":false,"meta":{"x":1},"title":"local c"}; `+
			`1|2|todos|update|{"id":"a"}|{"done":true}; 2|3|notes|insert|{"n":7}|{"n":7,"body":"seven"}; `+
			`3|4|todos|delete|{"id":"b"}|; 4|5|todos|update|{"id":"a"}|{"title":"mine"}`)
	check(`SELECT ltx, coalesce(seq, 0), state, coalesce(txid, 0), lsn FROM _volt_txns ORDER BY ltx`,
		"1|1|accepted|100|20; 2|2|pending|0|0; 3|0|pending|0|0; 4|0|pending|0|0")
	check(`SELECT id, title, done FROM todos ORDER BY id`, "a|mine|1; c|local c|0")
	check(`SELECT n, body FROM notes`, "7|seven")
	check(`SELECT name, sql LIKE '%WITHOUT ROWID' FROM sqlite_schema WHERE name IN ('todos_local', 'notes_local', '_volt_outbox') ORDER BY name`,
		"_volt_outbox|1; notes_local|0; todos_local|1")
	check(`SELECT count(*) FROM sqlite_schema WHERE name IN ('_volt_outbox_txn', '_volt_outbox_ltx', '_volt_outbox_v1', '_volt_txns_v1', 'todos_local_old')`, "0")
	check(`SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name IN ('_volt_outbox', '_volt_txns') AND sql IS NOT NULL ORDER BY name)`,
		"_volt_txns_seq")

	// the next local transaction follows the last one handed out (5, an
	// Update that wrote nothing), the next outbox id the last one
	exec(t, db, `INSERT INTO todos(id, title) VALUES ('d', 'new')`)
	check(`SELECT ltx, id FROM _volt_outbox WHERE key = '{"id":"d"}'`, "6|6")
	if n, err := db.Pending(); err != nil || n != 4 {
		t.Fatalf("pending: %d %v", n, err)
	}

	// the Syncer resends seq 2 and numbers the rest after it
	s := &Syncer{db: db, opts: SyncerOptions{MaxBatch: 10}}
	batch, err := s.next()
	if err != nil {
		t.Fatal(err)
	}
	if got := batchString(batch); got != "[2 2 true 1] [3 3 false 1] [4 4 false 1] [6 5 false 1]" {
		t.Fatalf("batch: %s", got)
	}
	if batch[0].muts[0].Table != "public.notes" || batch[0].muts[0].Op != volt.OpInsert {
		t.Fatalf("mutation: %+v", batch[0].muts[0])
	}

	// the echo of transaction 1 clears it and its overlay row
	applyChanges(t, db, &client.Change{Key: "c", Operation: volt.OpInsert,
		Value: client.Row{"id": "c", "title": "local c", "done": false, "meta": map[string]any{"x": 1}}, Txids: []uint32{100}, Last: true})
	check(`SELECT count(*) FROM _volt_outbox WHERE ltx = 1`, "0")
	check(`SELECT group_concat(ltx) FROM _volt_txns`, "2,3,4,6") // 6 has its row from the Syncer
	check(`SELECT id, write_id FROM todos_local ORDER BY id`, "a|4; b|3; d|6")
	check(`SELECT id, title FROM todos ORDER BY id`, "a|mine; c|local c; d|new")

	// opened again: no second upgrade, and ltx goes on
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	check(`SELECT count(*) FROM _volt_outbox`, "4")
	exec(t, db, `UPDATE notes SET body = 'eight' WHERE n = 7`)
	check(`SELECT ltx, id FROM _volt_outbox ORDER BY ltx DESC LIMIT 1`, "7|7")
}
