package mutations

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
)

// TestBookkeepingUsesIndexes checks the plans Postgres keeps for the
// statements every batch (or every replay) runs on volt.clients and
// volt.receipts: prepared once per connection, they run with a generic
// plan, which does not know how many clients a batch names. A plan that
// joins the batch's arrays with a whole table (a sequential scan) costs
// each write time in proportion to the number of clients and receipts
// ever written, and to the dead row versions of the clients' rows that
// every write updates: the claim did, and it was most of the Postgres
// time of a single-row write.
func TestBookkeepingUsesIndexes(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range migration {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `
INSERT INTO volt.clients SELECT 'c' || g, 5 FROM generate_series(1, 1000) g;
INSERT INTO volt.receipts (client_id, seq, status) SELECT 'c' || g, s, 'accepted' FROM generate_series(1, 1000) g, generate_series(1, 5) s;
ANALYZE volt.clients; ANALYZE volt.receipts;
SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, sql, args string
	}{
		{"claim", claimSQL, `'{c7}', '{6}', '{6}'`},

		{"setLastSeq", setLastSeqSQL, `'{c7}', '{5}'`},
		{"resolve", resolveSQL, `'{c7,c7}', '{5,6}'`},
		{"receipts", receiptsSQL, `'{c8}', '{6}', '{accepted}', '{""}', '{""}', '{""}'`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, fmt.Sprintf("PREPARE %s AS %s", c.name, c.sql)); err != nil {
				t.Fatal(err)
			}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			before := planScans(ctx, t, tx)
			if _, err := tx.Exec(ctx, fmt.Sprintf("EXECUTE %s(%s)", c.name, c.args)); err != nil {
				t.Fatal(err)
			}
			after := planScans(ctx, t, tx)
			scans := map[string]int64{}
			for table, n := range after {
				scans[table] = n - before[table]
			}
			for _, table := range []string{"clients", "receipts"} {
				if scans[table] > 0 {
					t.Errorf("%s read the whole of volt.%s (%d sequential scans)", c.name, table, scans[table])
				}
			}
		})
	}
}

// planScans returns the sequential scans of volt's tables counted by this
// session and not yet reported (statements inside volt.claim_seqs
// included).
func planScans(ctx context.Context, t *testing.T, tx pgx.Tx) map[string]int64 {
	t.Helper()
	rows, err := tx.Query(ctx, `SELECT relname, coalesce(seq_scan, 0) FROM pg_stat_xact_user_tables WHERE schemaname = 'volt'`)
	if err != nil {
		t.Fatal(err)
	}
	scans := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		scans[name] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return scans
}
