package client_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// exampleServer stands in for `volt serve`: a table items with two rows.
func exampleServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("electric-handle", "h1")
		switch q := r.URL.Query(); {
		case q.Get("offset") == "-1":
			h.Set("electric-offset", "0_0")
			h.Set("electric-schema", `{"id":{"type":"int4","pk_index":0},"title":{"type":"text"},"price":{"type":"numeric"}}`)
			fmt.Fprint(w, `[{"key":"\"public\".\"items\"/\"1\"","value":{"id":"1","title":"tea","price":"2.50"},"headers":{"operation":"insert","relation":["public","items"]}},`+
				`{"key":"\"public\".\"items\"/\"2\"","value":{"id":"2","title":"cake","price":"3.10"},"headers":{"operation":"insert","relation":["public","items"]}},`+
				`{"headers":{"control":"snapshot-end","xmin":"750","xmax":"750","xip_list":[]}}]`)
		case q.Get("live") == "":
			h.Set("electric-offset", "0_inf")
			fmt.Fprint(w, `[{"headers":{"control":"up-to-date","global_last_seen_lsn":"23805808"}}]`)
		default: // live: nothing new
			<-r.Context().Done()
		}
	}))
}

func ExampleClient_Stream() {
	srv := exampleServer()
	defer srv.Close()

	c, err := client.New(srv.URL)
	if err != nil {
		panic(err)
	}
	s, err := c.Stream(client.ShapeDef{Table: "items"})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = s.Run(ctx, func(b client.Batch) error {
		for _, ev := range b.Events {
			switch ev := ev.(type) {
			case *client.Change:
				fmt.Println(ev.Operation, ev.Value["id"], ev.Value["title"], ev.Value["price"])
			case *client.SnapshotEnd:
				fmt.Println("snapshot ends at xmax", ev.Xmax)
			case *client.UpToDate:
				fmt.Println("up to date")
			case *client.MustRefetch:
				fmt.Println("start again")
			}
		}
		fmt.Println("resume from", b.Handle, b.Offset)
		if b.UpToDate() {
			cancel() // a real client would keep following
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// insert 1 tea 2.50
	// insert 2 cake 3.10
	// snapshot ends at xmax 750
	// resume from h1 0_0
	// up to date
	// resume from h1 0_inf
	// context canceled
}

func ExampleClient_Shape() {
	srv := exampleServer()
	defer srv.Close()

	c, err := client.New(srv.URL)
	if err != nil {
		panic(err)
	}
	sh, err := c.Shape(client.ShapeDef{Table: "items"})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sh.Run(ctx) }()

	if err := sh.WaitUpToDate(ctx); err != nil {
		panic(err)
	}
	for _, row := range sh.All() {
		price := row["price"].(client.Decimal)
		cents, _ := price.Rat()
		fmt.Println(row["id"], row["title"], cents.Mul(cents, bigHundred()).RatString())
	}
	cancel()
	fmt.Println(<-done)
	// Output:
	// 1 tea 250
	// 2 cake 310
	// context canceled
}

func bigHundred() *big.Rat { return big.NewRat(100, 1) }

func ExampleNew() {
	c, err := client.New("http://localhost:3000",
		client.WithToken("my-api-token"),
		client.WithOnError(func(err error, attempt int, retryIn time.Duration) {
			log.Printf("volt: attempt %d failed: %v (retrying in %v)", attempt, err, retryIn)
		}))
	if err != nil {
		panic(err)
	}
	fmt.Println(c.URL())
	// Output: http://localhost:3000
}

func ExampleShapeOf() {
	srv := exampleServer()
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		panic(err)
	}

	type Item struct {
		ID    int32          `db:"id"`
		Title string         // the column "title"
		Price float64        `db:"price"`
		Note  sql.NullString `db:"-"` // not a column
	}
	items, err := client.ShapeOf[Item](c, client.ShapeDef{Table: "items"})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- items.Run(ctx) }()

	if err := items.WaitUpToDate(ctx); err != nil {
		panic(err)
	}
	for key, item := range items.All() {
		fmt.Printf("%s: %+v\n", key, item)
	}
	cancel()
	<-done
	// Output:
	// "public"."items"/"1": {ID:1 Title:tea Price:2.5 Note:{String: Valid:false}}
	// "public"."items"/"2": {ID:2 Title:cake Price:3.1 Note:{String: Valid:false}}
}

// exampleWriteServer stands in for volt's write endpoint: it accepts
// every transaction but those that insert the title "taken".
func exampleWriteServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req volt.MutationRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var resp volt.MutationResponse
		for _, tx := range req.Transactions {
			res := volt.MutationResult{Seq: tx.Seq, Status: volt.StatusAccepted, Txid: uint64(1000 + tx.Seq)}
			if tx.Mutations[0].Values["title"] == "taken" {
				res = volt.MutationResult{Seq: tx.Seq, Status: volt.StatusRejected, Code: volt.CodeConstraint,
					Message: "duplicate key value violates unique constraint", Constraint: "todos_title_key"}
			}
			resp.Results = append(resp.Results, res)
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
}

func ExampleClient_Writer() {
	srv := exampleWriteServer()
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		panic(err)
	}
	w, err := c.Writer("device-1")
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	insert := func(title string) []volt.Mutation {
		return []volt.Mutation{{Op: volt.OpInsert, Table: "todos",
			Values: map[string]any{"id": title, "title": title, "done": false}}}
	}

	res, err := w.Write(ctx, insert("buy milk"))
	fmt.Println(res.Status, res.Seq, res.Txid, err)

	// A rejection is an error too, carrying the result.
	_, err = w.Write(ctx, insert("taken"))
	var rej *client.RejectedError
	if errors.As(err, &rej) {
		fmt.Println(rej.Result.Code, rej.Result.Constraint)
	}
	// Output:
	// accepted 1 1001 <nil>
	// constraint todos_title_key
}

// Optimistic shows local writes at once over a shape's rows. (It needs a
// running volt, so this example has no output.)
func ExampleNewOptimistic() {
	ctx := context.Background()
	c, err := client.New("http://localhost:3000")
	if err != nil {
		panic(err)
	}
	todos, _ := c.Shape(client.ShapeDef{Table: "todos"})
	receipts, _ := c.ReceiptShape("device-1")
	w, _ := c.Writer("device-1")
	opt, err := client.NewOptimistic(client.OptimisticOptions{Writer: w, Shapes: []*client.Shape{todos}, Receipts: receipts})
	if err != nil {
		panic(err)
	}
	defer opt.Close()
	go todos.Run(ctx)
	go receipts.Run(ctx)

	opt.OnRollback(func(seq int64, res volt.MutationResult) { log.Println("undone:", res.Code, res.Message) })
	_, err = opt.Apply(ctx, []volt.Mutation{{Op: volt.OpInsert, Table: "todos",
		Values: map[string]any{"id": "7b0d…", "title": "buy milk", "done": false}}})
	if err != nil {
		log.Println(err) // a *client.RejectedError when the server said no
	}
	for _, row := range opt.Rows(todos) { // the synced rows with the pending writes on top
		fmt.Println(row["title"], row["done"])
	}
}
