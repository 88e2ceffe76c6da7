package client_test

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"

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

func ExampleStream() {
	srv := exampleServer()
	defer srv.Close()

	s, err := client.NewStream(client.ShapeOptions{URL: srv.URL + "/v1/shape", Table: "items"})
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

func ExampleShape() {
	srv := exampleServer()
	defer srv.Close()

	sh, err := client.NewShape(client.ShapeOptions{URL: srv.URL, Table: "items"})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sh.Run(ctx) }()

	if err := sh.WaitUpToDate(ctx); err != nil {
		panic(err)
	}
	for _, row := range sh.Rows() {
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
