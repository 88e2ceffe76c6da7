package mutations_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// BenchmarkMutationRoundTrip compares one single-row client transaction
// through POST /v1/mutations (httptest server, receipts, LSN) with the same
// INSERT sent directly over pgx.
func BenchmarkMutationRoundTrip(b *testing.B) {
	e := newEnv(b, mutations.Options{}, `CREATE TABLE bench (id bigint PRIMARY KEY, title text)`)
	var ids atomic.Int64
	b.Run("mutations-endpoint", func(b *testing.B) {
		client := fmt.Sprintf("bench-%d", ids.Add(1))
		for i := 0; i < b.N; i++ {
			r := e.one(client, int64(i+1), ins("bench", row{"id": ids.Add(1), "title": "t"}))
			if r.Status != volt.StatusAccepted {
				b.Fatalf("%+v", r)
			}
		}
	})
	b.Run("pgx-insert", func(b *testing.B) {
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			if _, err := e.pool.Exec(ctx, `INSERT INTO bench (id, title) VALUES ($1, $2)`, ids.Add(1), "t"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRequestOf100 compares a request of one transaction with a
// request of 100 (one row each): issue 18 wants the second at most 3× the
// first. Each reports ns per request.
func BenchmarkRequestOf100(b *testing.B) {
	e := newEnv(b, mutations.Options{}, `CREATE TABLE bench (id bigint PRIMARY KEY, title text)`)
	var ids atomic.Int64
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("transactions-%d", n), func(b *testing.B) {
			client := fmt.Sprintf("bench-%d", n)
			seq := int64(0)
			for i := 0; i < b.N; i++ {
				txs := make([]volt.ClientTransaction, n)
				for k := range txs {
					seq++
					txs[k] = txn(seq, ins("bench", row{"id": ids.Add(1), "title": "t"}))
				}
				for _, r := range e.post(client, txs...) {
					if r.Status != volt.StatusAccepted {
						b.Fatalf("%+v", r)
					}
				}
			}
		})
	}
}
