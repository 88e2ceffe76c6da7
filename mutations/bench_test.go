package mutations_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// BenchmarkMutationRoundTrip compares one single-row client transaction
// through POST /v1/mutations (httptest server, receipts, LSN) with the same
// INSERT sent directly over pgx.
func BenchmarkMutationRoundTrip(b *testing.B) {
	e := newEnv(b, mutations.Options{}, `CREATE TABLE bench (id bigint PRIMARY KEY, title text)`)
	b.Run("mutations-endpoint", func(b *testing.B) {
		client := fmt.Sprintf("bench-%d", b.N)
		for i := 0; i < b.N; i++ {
			r := e.one(client, int64(i+1), ins("bench", row{"id": fmt.Sprintf("%d%09d", b.N, i), "title": "t"}))
			if r.Status != volt.StatusAccepted {
				b.Fatalf("%+v", r)
			}
		}
	})
	b.Run("pgx-insert", func(b *testing.B) {
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			if _, err := e.pool.Exec(ctx, `INSERT INTO bench (id, title) VALUES ($1, $2)`, int64(-(b.N*1000000000 + i + 1)), "t"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
