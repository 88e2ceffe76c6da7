package localstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/client/localstore"
)

func ExampleDB_Update() {
	dir, _ := os.MkdirTemp("", "localstore-example-")
	defer os.RemoveAll(dir)
	db, err := localstore.Open(filepath.Join(dir, "app.db"), localstore.Options{ClientID: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	// Normally DB.Sync creates the table from the shape; Declare lets the
	// app write before the first sync.
	zero := 0
	err = db.Declare("todos", "todos", client.Schema{
		"id":    {Type: "text", PKIndex: &zero},
		"title": {Type: "text"},
		"done":  {Type: "bool"},
	})
	if err != nil {
		log.Fatal(err)
	}
	// One Update is one client transaction: the view's triggers write the
	// overlay and the outbox, atomically.
	err = db.Update(func(tx *localstore.Tx) error {
		if _, err := tx.Exec(`INSERT INTO todos(id, title, done) VALUES ('t1', 'buy milk', false)`); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE todos SET done = true WHERE id = 't1'`)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = db.View(func(tx *localstore.Tx) error {
		var title string
		var done bool
		if err := tx.QueryRow(`SELECT title, done FROM todos WHERE id = 't1'`).Scan(&title, &done); err != nil {
			return err
		}
		fmt.Println(title, done)
		return nil
	})
	n, _ := db.Pending()
	fmt.Println("pending transactions:", n)
	// Output:
	// buy milk true
	// pending transactions: 1
}

// Sync keeps a table in step with a shape of the server; a Syncer sends
// the local writes. Both use one client.Client. (They need a running volt,
// so this example has no output.)
func ExampleDB_Sync() {
	ctx := context.Background()
	db, err := localstore.Open("app.db", localstore.Options{ClientID: "device-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	c, err := client.New("http://localhost:3000", client.WithToken("my-api-token"))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		// The table todos: a view over the synced rows and the local writes.
		if err := db.Sync(ctx, c, client.ShapeDef{Table: "todos"}, "todos"); err != nil {
			log.Println("sync:", err)
		}
	}()
	s, err := db.NewSyncer(c, localstore.SyncerOptions{OnError: func(err error) { log.Println("send:", err) }})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = s.Run(ctx) }()

	_ = db.Update(func(tx *localstore.Tx) error {
		_, err := tx.Exec(`UPDATE todos SET done = true WHERE id = ?`, "t1")
		return err
	})
}
