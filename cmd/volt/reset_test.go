package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/voltsync/volt/internal/pgtest"
)

// resetObjects says which of stream id's slot and publication and the volt
// schema exist in the database at url.
func resetObjects(t *testing.T, url, id string) (slot, pub, schema bool) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'volt_slot_' || $1),
		EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'volt_publication_' || $1),
		EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'volt')`, id).Scan(&slot, &pub, &schema)
	if err != nil {
		t.Fatal(err)
	}
	return slot, pub, schema
}

// resetSetup gives the database at url what volt serve leaves in it for
// stream id.
func resetSetup(t *testing.T, url, id string) {
	pgtest.Exec(t, url,
		`CREATE SCHEMA IF NOT EXISTS volt`,
		`CREATE TABLE IF NOT EXISTS volt.receipts (client_id text, seq bigint)`,
		`CREATE PUBLICATION volt_publication_`+id,
		`SELECT pg_create_logical_replication_slot('volt_slot_`+id+`', 'pgoutput')`)
}

func TestResetDropsSlotPublicationAndSchema(t *testing.T) {
	url := pgtest.NewDB(t)
	resetSetup(t, url, "r1")
	ctx := context.Background()

	// Without -yes and without a terminal: refused, nothing dropped.
	c, out, _ := cliFor(map[string]string{"DATABASE_URL": url, "VOLT_REPLICATION_STREAM_ID": "r1"})
	err := run(ctx, []string{"reset"}, c)
	if err == nil || !strings.Contains(err.Error(), "-yes") || !strings.Contains(err.Error(), "not a terminal") {
		t.Fatalf("reset without -yes on a non-terminal: %v", err)
	}
	if s, p, sc := resetObjects(t, url, "r1"); !s || !p || !sc {
		t.Fatalf("refused reset dropped something: slot %v publication %v schema %v", s, p, sc)
	}

	// At a terminal, the wrong name: refused.
	c.stdinTerminal = true
	c.stdin = strings.NewReader("postgres\n")
	if err := run(ctx, []string{"reset"}, c); err == nil || !strings.Contains(err.Error(), "nothing dropped") {
		t.Fatalf("reset with the wrong database name: %v", err)
	}
	if s, p, sc := resetObjects(t, url, "r1"); !s || !p || !sc {
		t.Fatalf("unconfirmed reset dropped something: slot %v publication %v schema %v", s, p, sc)
	}

	// The right name: everything dropped and named.
	var db string
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	out.Reset()
	c.stdin = strings.NewReader(db + "\n")
	if err := run(ctx, []string{"reset"}, c); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type the database name to confirm", "dropped replication slot volt_slot_r1\n", "dropped publication volt_publication_r1\n", "dropped schema volt\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if s, p, sc := resetObjects(t, url, "r1"); s || p || sc {
		t.Fatalf("after reset: slot %v publication %v schema %v", s, p, sc)
	}

	// Again, with -yes: nothing left, not an error.
	c, out, _ = cliFor(map[string]string{"DATABASE_URL": url})
	if err := run(ctx, []string{"reset", "-yes", "-replication-stream-id", "r1"}, c); err != nil {
		t.Fatalf("second reset: %v", err)
	}
	for _, want := range []string{"replication slot volt_slot_r1: not found", "publication volt_publication_r1: not found", "schema volt: not found"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// The schema stays while another volt instance's slot is in the database,
// and a slot in use is not dropped at all.
func TestResetKeepsWhatOthersUse(t *testing.T) {
	url := pgtest.NewDB(t)
	resetSetup(t, url, "a")
	resetSetup(t, url, "b")
	ctx := context.Background()
	c, out, _ := cliFor(map[string]string{"DATABASE_URL": url, "ELECTRIC_REPLICATION_STREAM_ID": "a"})
	if err := run(ctx, []string{"reset", "-yes"}, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "schema volt: kept") || !strings.Contains(out.String(), "volt_slot_b") {
		t.Fatalf("output:\n%s", out)
	}
	if s, p, sc := resetObjects(t, url, "a"); s || p || !sc {
		t.Fatalf("after reset a: slot %v publication %v schema %v", s, p, sc)
	}

	// Stream b's slot is being read: refused, nothing dropped.
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	if err := pglogrepl.StartReplication(ctx, repl, "volt_slot_b", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'volt_publication_b'"}}); err != nil {
		t.Fatal(err)
	}
	c, _, _ = cliFor(map[string]string{"DATABASE_URL": url, "VOLT_REPLICATION_STREAM_ID": "b"})
	err = run(ctx, []string{"reset", "-yes"}, c)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "stop volt first") {
		t.Fatalf("reset of a slot in use: %v", err)
	}
	if s, p, sc := resetObjects(t, url, "b"); !s || !p || !sc {
		t.Fatalf("refused reset dropped something: slot %v publication %v schema %v", s, p, sc)
	}
}

func TestResetConfigurationErrors(t *testing.T) {
	c, _, _ := cliFor(nil)
	err := run(context.Background(), []string{"reset", "-yes"}, c)
	if err == nil || !strings.Contains(err.Error(), "needs DATABASE_URL") {
		t.Fatalf("reset without a database: %v", err)
	}
	c, _, _ = cliFor(map[string]string{"DATABASE_URL": "postgres://x/y"})
	err = run(context.Background(), []string{"reset", "-replication-stream-id", "a b"}, c)
	if err == nil || !strings.Contains(err.Error(), "replication stream id") {
		t.Fatalf("reset with a bad stream id: %v", err)
	}
}
