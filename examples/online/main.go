// Command online is pattern 1, online writes, against volt serve: each
// write returns once the server accepted it and the row is in the shape.
//
// It expects a table todos(id uuid primary key, title text, done bool) and
// a server that accepts writes to it (volt serve -insecure-writes, for
// development). See the "Go client" section of the README.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// Todo is a row of todos: the db tags name its columns.
type Todo struct {
	ID    string `db:"id"`
	Title string `db:"title"`
	Done  bool   `db:"done"`
}

func main() {
	url := flag.String("url", "http://localhost:3000", "volt's base URL")
	clientID := flag.String("client-id", "", "client id of the write queue (default: a new one)")
	title := flag.String("title", "buy milk", "title of the todo to add")
	flag.Parse()
	if *clientID == "" {
		*clientID = "online-" + randomUUID() // a new queue: its seqs start at 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	c, err := client.New(*url)
	if err != nil {
		log.Fatal(err)
	}
	todos, err := client.ShapeOf[Todo](c, client.ShapeDef{Table: "todos"})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = todos.Run(ctx) }()
	if err := todos.WaitUpToDate(ctx); err != nil {
		log.Fatal(err)
	}
	w, err := c.Writer(*clientID)
	if err != nil {
		log.Fatal(err)
	}

	id := randomUUID()
	res, err := w.WriteAndAwait(ctx, []volt.Mutation{{Op: volt.OpInsert, Table: "todos",
		Values: map[string]any{"id": id, "title": *title, "done": false}}}, todos.Shape)
	if err != nil {
		log.Fatal(err) // a *client.RejectedError says why the server refused it
	}
	fmt.Printf("added %s in transaction %d\n", id, res.Txid)

	_, err = w.WriteAndAwait(ctx, []volt.Mutation{{Op: volt.OpUpdate, Table: "todos",
		Key: map[string]any{"id": id}, Values: map[string]any{"done": true}}}, todos.Shape)
	if err != nil {
		log.Fatal(err)
	}
	for todo := range todos.Values() {
		fmt.Printf("%s  done=%-5v  %s\n", todo.ID, todo.Done, todo.Title)
	}
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
