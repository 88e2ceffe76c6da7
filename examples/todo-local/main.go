// Command todo-local is pattern 4, through-the-database sync, against
// volt serve: a terminal todo list kept in a local SQLite store
// (client/localstore) that works offline. The app reads and writes the
// view todos with plain SQL; the store puts the writes in its overlay and
// outbox, a Syncer sends them to POST /v1/mutations, and DB.Sync follows
// the todos shape into the same file. Two instances against one server
// converge after either goes offline and back.
//
// It expects a table todos(id uuid primary key, title text, done bool)
// (created when -database-url is given) and a server that accepts writes
// to it (volt serve -insecure-writes, for development). Commands, one per
// line on stdin: add <title>, edit <n> <title>, done <n>, undo <n>,
// rm <n>, ls, offline, online, quit. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	url := flag.String("url", "http://localhost:3000", "volt's base URL")
	path := flag.String("db", "todo-local.db", "the local store (SQLite file)")
	dbURL := flag.String("database-url", os.Getenv("DATABASE_URL"), "when set, create todos in this Postgres database if missing")
	offline := flag.Bool("offline", false, "start offline")
	flag.Parse()

	if *dbURL != "" {
		if err := createTable(*dbURL); err != nil {
			log.Fatal(err)
		}
	}
	a, err := newApp(config{URL: *url, Path: *path, Out: os.Stdout})
	if err != nil {
		log.Fatal(err)
	}
	if !*offline {
		a.online()
	}
	fmt.Fprintln(os.Stdout, `commands: add <title>, edit <n> <title>, done <n>, undo <n>, rm <n>, ls, offline, online, quit`)
	err = a.run(os.Stdin)
	if cerr := a.close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Fatal(err)
	}
}

// todosDDL is the server table the example syncs.
const todosDDL = `CREATE TABLE IF NOT EXISTS todos (id uuid PRIMARY KEY, title text, done bool)`

// createTable creates todos in Postgres if it is missing.
func createTable(dbURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, todosDDL); err != nil {
		return fmt.Errorf("create todos: %w", err)
	}
	return nil
}
