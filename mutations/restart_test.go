package mutations_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgembed"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/mutations"
)

// TestPostgresRestartMidRequest restarts Postgres while a long request
// runs, once its first chunk of transactions is committed: every
// transaction is accepted or retry (or the request fails), Postgres holds
// exactly the accepted ones (or one more chunk, whose COMMIT was not
// answered), and resending completes the rest.
func TestPostgresRestartMidRequest(t *testing.T) {
	c := pgtest.NewCluster(t)
	e := newEnvOn(t, pgtest.NewDBOn(t, c), mutations.Options{MaxTransactions: 1000}, `CREATE TABLE items (id int PRIMARY KEY)`)
	secondChunk := make(chan struct{})
	var once sync.Once
	e.h.Register("slow", func(ctx context.Context, tx pgx.Tx, args json.RawMessage) error {
		if string(args) == "150" {
			once.Do(func() { close(secondChunk) })
		}
		_, err := tx.Exec(ctx, `SELECT pg_sleep(0.005)`)
		return err
	})
	var txs []volt.ClientTransaction
	for i := 1; i <= 400; i++ {
		txs = append(txs, txn(int64(i), ins("items", row{"id": i}), named("slow", strconv.Itoa(i))))
	}
	done := make(chan []volt.MutationResult, 1)
	go func() {
		done <- e.h.Apply(context.Background(), nil, &volt.MutationRequest{ClientID: "c", Transactions: txs})
	}()
	<-secondChunk
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c2, err := c.Restart(ctx, pgembed.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()); _ = os.RemoveAll(c2.DataDir) })
	rs := <-done
	accepted, retried := 0, 0
	for i, r := range rs {
		switch r.Status {
		case volt.StatusAccepted:
			if retried > 0 {
				t.Fatalf("seq %d accepted after a retry", r.Seq)
			}
			accepted++
		case volt.StatusRetry:
			retried++
		default:
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if accepted == 0 || retried == 0 {
		t.Fatalf("restart did not land mid-request: %d accepted, %d retry", accepted, retried)
	}
	// An accepted-but-unanswered commit may exist (the connection died
	// after COMMIT): the rows are those the server recorded.
	stored := e.count(`SELECT count(*) FROM volt.receipts`)
	if n := e.count(`SELECT count(*) FROM items`); n != stored || stored < accepted || stored > accepted+100 {
		t.Fatalf("%d rows, %d receipts, %d accepted", n, stored, accepted)
	}
	if n := e.count(`SELECT count(*) FROM items WHERE id > $1`, stored); n != 0 {
		t.Fatalf("rows beyond the receipts: %d", n)
	}
	// The client resends from the first retry; everything lands once.
	rest := e.post("c", txs[accepted:]...)
	for _, r := range rest {
		wantAccepted(t, r)
	}
	if n := e.count(`SELECT count(*) FROM items`); n != len(txs) {
		t.Fatalf("%d rows after resending", n)
	}
	t.Logf("%d accepted before the restart, %d retried", accepted, retried)
}

// TestPostgresDown: with Postgres unreachable every result is retry.
func TestPostgresDown(t *testing.T) {
	c := pgtest.NewCluster(t)
	e := newEnvOn(t, pgtest.NewDBOn(t, c), mutations.Options{}, `CREATE TABLE items (id int PRIMARY KEY)`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rs := e.post("c", txn(1, ins("items", row{"id": 1})), txn(2, ins("items", row{"id": 2})))
	for _, r := range rs {
		if r.Status != volt.StatusRetry {
			t.Fatalf("Postgres down: %+v", r)
		}
	}
}
