// Command optimistic is pattern 2, optimistic state, against volt serve:
// writes show in the rows at once, stay on top of the synced rows until
// their echo arrives, and roll back with an event when the server rejects
// them.
//
// It expects a table todos(id uuid primary key, title text, done bool) and
// a server that accepts writes to it (volt serve -insecure-writes, for
// development). See the "Go client" section of the README.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

func main() {
	url := flag.String("url", "http://localhost:3000", "volt's base URL")
	clientID := flag.String("client-id", "", "client id of the write queue (default: a new one)")
	flag.Parse()
	if *clientID == "" {
		*clientID = "optimistic-" + randomUUID()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	c, err := client.New(*url)
	if err != nil {
		log.Fatal(err)
	}
	todos, err := c.Shape(client.ShapeDef{Table: "todos"})
	if err != nil {
		log.Fatal(err)
	}
	receipts, err := c.ReceiptShape(*clientID)
	if err != nil {
		log.Fatal(err)
	}
	w, err := c.Writer(*clientID)
	if err != nil {
		log.Fatal(err)
	}
	// Created before the shapes run, so it sees every batch.
	opt, err := client.NewOptimistic(client.OptimisticOptions{Writer: w, Shapes: []*client.Shape{todos}, Receipts: receipts})
	if err != nil {
		log.Fatal(err)
	}
	defer opt.Close()
	opt.OnRollback(func(seq int64, res volt.MutationResult) {
		fmt.Printf("rolled back transaction %d: %s %s\n", seq, res.Code, res.Message)
	})
	changed := make(chan struct{}, 1)
	opt.Subscribe(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	waitUntil := func(cond func() bool) {
		for !cond() {
			select {
			case <-changed:
			case <-ctx.Done():
				log.Fatal(ctx.Err())
			}
		}
	}
	go func() { _ = todos.Run(ctx) }()
	go func() { _ = receipts.Run(ctx) }()
	if err := todos.WaitUpToDate(ctx); err != nil {
		log.Fatal(err)
	}

	id := randomUUID()
	insert := []volt.Mutation{{Op: volt.OpInsert, Table: "todos", Values: map[string]any{"id": id, "title": "water plants", "done": false}}}
	toggle := []volt.Mutation{{Op: volt.OpUpdate, Table: "todos", Key: map[string]any{"id": id}, Values: map[string]any{"done": true}}}
	key, _ := opt.Key(todos, insert[0])

	// Apply waits for the server's answer, but the rows show the change
	// as soon as Apply has queued it.
	answered := make(chan volt.MutationResult, 1)
	go func() {
		res, err := opt.Apply(ctx, insert)
		if err != nil {
			log.Fatal(err)
		}
		answered <- res
	}()
	waitUntil(func() bool { _, ok := opt.Get(todos, key); return ok })
	fmt.Printf("shown at once (%d pending)\n", opt.Pending())
	fmt.Printf("insert: %s\n", (<-answered).Status)

	res, err := opt.Apply(ctx, toggle)
	if err != nil {
		log.Fatal(err)
	}
	row, _ := opt.Get(todos, key)
	fmt.Printf("toggle: %s, done=%v\n", res.Status, row["done"])

	// A second insert of the same id is rejected and rolled back.
	var rej *client.RejectedError
	if _, err := opt.Apply(ctx, insert); !errors.As(err, &rej) {
		log.Fatalf("the second insert: %v, want a rejection", err)
	}
	waitUntil(func() bool { return opt.Pending() == 0 }) // every echo arrived
	for _, row := range opt.Rows(todos) {
		fmt.Printf("%v  done=%-5v  %v\n", row["id"], row["done"], row["title"])
	}
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
