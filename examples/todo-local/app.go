package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/client/localstore"
)

// table is the local table (a view of the store) and the server table.
const table = "todos"

// todosSchema is the server table's electric-schema, declared so that the
// app can write before its first sync (offline from the start). It must
// match what the shape sends, or the first sync rebuilds the table.
var todosSchema = client.Schema{
	"id":    {Type: "uuid", PKIndex: new(0), NotNull: true},
	"title": {Type: "text"},
	"done":  {Type: "bool"},
}

// config configures an app.
type config struct {
	URL  string    // volt's base URL
	Path string    // the local store
	Out  io.Writer // where the app prints
	// MinBackoff and MaxBackoff bound the retries of the shape and the
	// Syncer (client defaults when zero).
	MinBackoff, MaxBackoff time.Duration
}

// item is one todo as the app shows it.
type item struct {
	ID    string
	Title string
	Done  bool
	State string // "pending", "synced" or "rejected"
}

// app is the todo list: the local store, and its sync while online.
type app struct {
	cfg config
	db  *localstore.DB

	mu       sync.Mutex
	writes   map[int64]string  // local transaction → the todo it wrote
	titles   map[string]string // todo id → the title of its last local write
	rejected map[string]bool   // todos whose last local write was rolled back
	lastErr  string            // the last sync error printed
	stop     func()            // ends the sync; nil while offline
}

// newApp opens the store at cfg.Path; the app starts offline.
func newApp(cfg config) (*app, error) {
	a := &app{cfg: cfg, writes: map[int64]string{}, titles: map[string]string{}, rejected: map[string]bool{}}
	db, err := localstore.Open(cfg.Path, localstore.Options{OnRollback: a.rolledBack})
	if err != nil {
		return nil, err
	}
	a.db = db
	tables, err := db.Tables()
	if err == nil && !slices.Contains(tables, table) {
		err = db.Declare(table, table, todosSchema)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// close stops the sync and closes the store.
func (a *app) close() error {
	a.offline()
	return a.db.Close()
}

// online starts following the shape and sending the outbox.
func (a *app) online() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop != nil {
		return
	}
	a.lastErr = ""
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.follow(ctx)
	}()
	go func() {
		defer wg.Done()
		a.send(ctx)
	}()
	a.stop = func() { cancel(); wg.Wait() }
}

// offline stops the sync and waits until it has stopped: no request is
// made until online. Local writes keep working.
func (a *app) offline() {
	a.mu.Lock()
	stop := a.stop
	a.stop = nil
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// follow syncs the todos shape into the store until ctx ends. Sync
// retries transient failures itself; on any other error it starts again
// after a pause.
func (a *app) follow(ctx context.Context) {
	c, err := a.client()
	if err != nil {
		a.syncError(err)
		return
	}
	for {
		err := a.db.Sync(ctx, c, client.ShapeDef{Table: table}, table)
		if ctx.Err() != nil {
			return
		}
		a.syncError(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// send runs the Syncer, which sends the outbox to POST /v1/mutations.
func (a *app) send(ctx context.Context) {
	c, err := a.client()
	if err != nil {
		a.syncError(err)
		return
	}
	s, err := a.db.NewSyncer(c, localstore.SyncerOptions{OnError: a.syncError,
		MinBackoff: a.cfg.MinBackoff, MaxBackoff: a.cfg.MaxBackoff})
	if err != nil {
		a.syncError(err)
		return
	}
	_ = s.Run(ctx) // returns when ctx ends
}

// client returns a client of the server.
func (a *app) client() (*client.Client, error) {
	return client.New(a.cfg.URL, client.WithBackoff(a.cfg.MinBackoff, a.cfg.MaxBackoff))
}

// syncError prints a sync error, once while it repeats.
func (a *app) syncError(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if msg := err.Error(); msg != a.lastErr {
		a.lastErr = msg
		fmt.Fprintf(a.cfg.Out, "sync: %v (retrying)\n", err)
	}
}

// rolledBack is the store's OnRollback: the server refused a local
// transaction (or it depended on one that was refused), and the store
// has undone it. The todo it wrote shows as rejected until written again.
func (a *app) rolledBack(rb localstore.Rollback) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.writes[rb.LocalTx]
	if !ok {
		fmt.Fprintf(a.cfg.Out, "rejected: a write of an earlier run (%s %s)\n", rb.Code, rb.Message)
		return
	}
	delete(a.writes, rb.LocalTx)
	a.rejected[id] = true
	fmt.Fprintf(a.cfg.Out, "rejected: %q (%s %s)\n", a.titles[id], rb.Code, rb.Message)
}

// run executes commands, one a line, until quit or the end of in.
func (a *app) run(in io.Reader) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "quit" || line == "q" {
			return nil
		}
		if line == "" {
			continue
		}
		if err := a.exec(line); err != nil {
			a.printf("error: %v\n", err)
		}
	}
	return sc.Err()
}

// exec runs one command.
func (a *app) exec(line string) error {
	cmd, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch cmd {
	case "add":
		if arg == "" {
			return errors.New("usage: add <title>")
		}
		return a.write(randomUUID(), arg, `INSERT INTO todos(id, title, done) VALUES (?1, ?2, false)`, arg)
	case "edit":
		n, title, _ := strings.Cut(arg, " ")
		if title = strings.TrimSpace(title); title == "" {
			return errors.New("usage: edit <n> <title>")
		}
		return a.writeNth(n, title, `UPDATE todos SET title = ?2 WHERE id = ?1`, title)
	case "done":
		return a.writeNth(arg, "", `UPDATE todos SET done = true WHERE id = ?1`)
	case "undo":
		return a.writeNth(arg, "", `UPDATE todos SET done = false WHERE id = ?1`)
	case "rm":
		return a.writeNth(arg, "", `DELETE FROM todos WHERE id = ?1`)
	case "ls":
		return a.list()
	case "offline":
		a.offline()
		a.printf("offline\n")
		return nil
	case "online":
		a.online()
		a.printf("online\n")
		return nil
	}
	return fmt.Errorf("unknown command %q (add, edit, done, undo, rm, ls, offline, online, quit)", cmd)
}

// writeNth runs query on the n-th todo of the list (from 1), as ls would
// show it now; title is the todo's new title, "" when it keeps its own.
func (a *app) writeNth(n, title, query string, args ...any) error {
	items, err := a.items()
	if err != nil {
		return err
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 1 || i > len(items) {
		return fmt.Errorf("no todo %q: pick a number from ls", n)
	}
	it := items[i-1]
	if title == "" {
		title = it.Title
	}
	return a.write(it.ID, title, query, args...)
}

// write runs query, whose ?1 is the todo's id, in one local transaction,
// and remembers which todo the transaction wrote.
func (a *app) write(id, title, query string, args ...any) error {
	return a.db.Update(func(tx *localstore.Tx) error {
		if _, err := tx.Exec(query, append([]any{id}, args...)...); err != nil {
			return err
		}
		// The overlay row carries the local transaction that wrote it
		// last: this one.
		var ltx int64
		err := tx.QueryRow(`SELECT write_id FROM todos_local WHERE id = ?`, id).Scan(&ltx)
		if errors.Is(err, sql.ErrNoRows) {
			return errors.New("the todo is gone")
		} else if err != nil {
			return err
		}
		// Recorded before the commit: the Syncer may send it at once.
		a.mu.Lock()
		defer a.mu.Unlock()
		a.writes[ltx] = id
		a.titles[id] = title
		delete(a.rejected, id)
		return nil
	})
}

// list prints the todos with their state.
func (a *app) list() error {
	items, err := a.items()
	if err != nil {
		return err
	}
	var b strings.Builder
	for i, it := range items {
		mark := " "
		if it.Done {
			mark = "x"
		}
		fmt.Fprintf(&b, "%2d [%s] %-40s %s\n", i+1, mark, it.Title, it.State)
	}
	if len(items) == 0 {
		b.WriteString("(no todos)\n")
	}
	for _, title := range a.lost(items) {
		fmt.Fprintf(&b, " - [ ] %-40s rejected (not saved)\n", title)
	}
	deleted, err := a.deleted()
	if err != nil {
		return err
	}
	for _, title := range deleted {
		fmt.Fprintf(&b, " - [ ] %-40s removed, pending\n", title)
	}
	n, err := a.db.Pending()
	if err != nil {
		return err
	}
	a.mu.Lock()
	status := "offline"
	if a.stop != nil {
		status = "online"
	}
	a.mu.Unlock()
	fmt.Fprintf(&b, "-- %s, %d local transaction(s) pending\n", status, n)
	a.printf("%s", b.String())
	return nil
}

// items returns the todos, ordered by title. A todo is pending while the
// store's overlay holds a local change of it that the server has not
// echoed yet, rejected when its last write was rolled back, else synced.
func (a *app) items() ([]item, error) {
	var out []item
	err := a.db.View(func(tx *localstore.Tx) error {
		rows, err := tx.Query(`SELECT t.id, t.title, t.done,
			EXISTS (SELECT 1 FROM todos_local l WHERE l.id = t.id)
			FROM todos t ORDER BY t.title, t.id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it item
			var title sql.NullString
			var done sql.NullBool
			var pending bool
			if err := rows.Scan(&it.ID, &title, &done, &pending); err != nil {
				return err
			}
			it.Title, it.Done = title.String, done.Bool
			out = append(out, it)
			out[len(out)-1].State = a.state(it.ID, pending)
		}
		return rows.Err()
	})
	return out, err
}

// deleted returns the titles of the todos removed locally whose delete
// the server has not echoed yet: the view hides them, the overlay marks
// them is_deleted.
func (a *app) deleted() ([]string, error) {
	var out []string
	err := a.db.View(func(tx *localstore.Tx) error {
		rows, err := tx.Query(`SELECT coalesce(s.title, l.title, l.id) FROM todos_local l
			LEFT JOIN todos_synced s ON s.id = l.id WHERE l.is_deleted ORDER BY 1`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var title string
			if err := rows.Scan(&title); err != nil {
				return err
			}
			out = append(out, title)
		}
		return rows.Err()
	})
	return out, err
}

func (a *app) state(id string, pending bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case pending:
		return "pending"
	case a.rejected[id]:
		return "rejected"
	}
	return "synced"
}

// lost returns the titles of rejected todos that are not in items: their
// insert was refused, or the server deleted them.
func (a *app) lost(items []item) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	shown := map[string]bool{}
	for _, it := range items {
		shown[it.ID] = true
	}
	var out []string
	for id := range a.rejected {
		if !shown[id] {
			out = append(out, a.titles[id])
		}
	}
	sort.Strings(out)
	return out
}

// printf prints to the app's output; the sync goroutines print too.
func (a *app) printf(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintf(a.cfg.Out, format, args...)
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
