package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

const resetUsage = `Usage: volt reset [flags]

Removes volt from a database: drops the replication slot volt_slot_<id> and
the publication volt_publication_<id> of -replication-stream-id, and the
schema volt (write receipts and client sequence numbers). Run it after
stopping volt for good: a slot nobody reads keeps Postgres from recycling
WAL. Synced tables keep their data and REPLICA IDENTITY FULL. Missing
objects are not errors; the schema is kept while another volt slot exists
in the database. Asks you to type the database name unless -yes is given,
and refuses without -yes when stdin is not a terminal.

Flags:
`

// runReset is volt reset.
func runReset(ctx context.Context, args []string, c cli) error {
	cfg := DefaultConfig()
	var own []setting
	for _, s := range settings(&cfg) {
		if s.flag == "database-url" || s.flag == "replication-stream-id" {
			own = append(own, s)
		}
	}
	fs := flag.NewFlagSet("volt reset", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		d := DefaultConfig()
		var defaults []setting
		for _, s := range settings(&d) {
			if s.flag == "database-url" || s.flag == "replication-stream-id" {
				defaults = append(defaults, s)
			}
		}
		fmt.Fprint(c.stderr, resetUsage)
		printSettings(c.stderr, defaults)
		fmt.Fprint(c.stderr, "  -yes\n\tdrop without asking for the database name (for scripts)\n\tdefault: false\n")
	}
	problems := bindSettings(fs, own, c.getenv)
	yes := fs.Bool("yes", false, "drop without asking for the database name (for scripts)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("volt reset takes no arguments, got %q.", fs.Args()))
	}
	if cfg.DatabaseURL == "" {
		problems = append(problems, "volt reset needs DATABASE_URL (or -database-url), the database volt served; with the embedded Postgres (no DATABASE_URL), stop volt and delete its storage directory instead.")
	}
	for _, p := range cfg.Validate() {
		if strings.Contains(p, "DATABASE_URL") || strings.Contains(p, "replication stream id") {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("configuration:\n%s", strings.Join(problems, "\n"))
	}

	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(context.Background())
	var db string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return fmt.Errorf("read the database name: %w", err)
	}
	slot, pub := "volt_slot_"+cfg.StreamID, "volt_publication_"+cfg.StreamID

	// Refuse before dropping anything when the slot cannot be dropped.
	var slotDB string
	var activePID *int32
	err = conn.QueryRow(ctx, `SELECT coalesce(database, ''), active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&slotDB, &activePID)
	slotExists := err == nil
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("look up replication slot %s: %w", slot, err)
	case slotDB != db:
		return fmt.Errorf("replication slot %s belongs to database %q, not %q: run volt reset with that database's URL; nothing dropped", slot, slotDB, db)
	case activePID != nil:
		return fmt.Errorf("replication slot %s is in use by server process %d: stop volt first; nothing dropped", slot, *activePID)
	}

	if !*yes {
		if !c.stdinTerminal {
			return errors.New("refusing to drop without confirmation: stdin is not a terminal; pass -yes to drop without asking; nothing dropped")
		}
		fmt.Fprintf(c.stdout, "This drops replication slot %s, publication %s and schema volt (with every write receipt) from database %q.\nType the database name to confirm: ", slot, pub, db)
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read the confirmation: %w; nothing dropped", err)
		}
		if strings.TrimSpace(line) != db {
			return fmt.Errorf("%q is not the database name %q; nothing dropped", strings.TrimSpace(line), db)
		}
	}

	if slotExists {
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			return fmt.Errorf("drop replication slot %s: %w", slot, err)
		}
		fmt.Fprintf(c.stdout, "dropped replication slot %s\n", slot)
	} else {
		fmt.Fprintf(c.stdout, "replication slot %s: not found\n", slot)
	}

	var pubExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, pub).Scan(&pubExists); err != nil {
		return fmt.Errorf("look up publication %s: %w", pub, err)
	}
	if pubExists {
		if _, err := conn.Exec(ctx, `DROP PUBLICATION IF EXISTS `+pgx.Identifier{pub}.Sanitize()); err != nil {
			return fmt.Errorf("drop publication %s: %w", pub, err)
		}
		fmt.Fprintf(c.stdout, "dropped publication %s\n", pub)
	} else {
		fmt.Fprintf(c.stdout, "publication %s: not found\n", pub)
	}

	rows, err := conn.Query(ctx, `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'volt\_slot\_%' AND database = current_database() ORDER BY slot_name`)
	if err != nil {
		return fmt.Errorf("look up other volt slots: %w", err)
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("look up other volt slots: %w", err)
	}
	defer fmt.Fprintln(c.stdout, "the shape logs in volt's storage directory are now stale: delete it (a volt started on it discards them)")
	if len(others) > 0 {
		fmt.Fprintf(c.stdout, "schema volt: kept, other volt instances use this database (slots %s); reset them too to drop it\n", strings.Join(others, ", "))
		return nil
	}
	var schemaExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'volt')`).Scan(&schemaExists); err != nil {
		return fmt.Errorf("look up schema volt: %w", err)
	}
	if !schemaExists {
		fmt.Fprintln(c.stdout, "schema volt: not found")
		return nil
	}
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS volt CASCADE`); err != nil {
		return fmt.Errorf("drop schema volt: %w", err)
	}
	fmt.Fprintln(c.stdout, "dropped schema volt")
	return nil
}
