package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	wire "github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/pgtest"
)

// TestWriteCrashExactlyOnce kills volt with SIGKILL over and over while
// many clients (each its own client_id) write through a small write pool,
// so that batches holding several clients' transactions (group commit)
// are in flight when it dies; each client resends from its first
// unanswered or retry seq until it is accepted. Afterwards every seq is
// applied exactly once and every seq answered accepted is in Postgres.
// WRITE_CRASH_ROUNDS sets the number of kills (10 by default; 100 by hand).
func TestWriteCrashExactlyOnce(t *testing.T) {
	rounds := 10
	if s := os.Getenv("WRITE_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("WRITE_CRASH_ROUNDS=%q", s)
		}
		rounds = n
	}
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE wcrash_log (client text NOT NULL, seq bigint NOT NULL)`,
		`CREATE TABLE wcrash_rows (id text PRIMARY KEY)`)
	v := startVolt(t, db, "VOLT_INSECURE_WRITES=true", "VOLT_WRITE_POOL_SIZE=2")
	const clients = 12
	var stop atomic.Bool
	var accepted, broken atomic.Int64 // accepted answers; requests cut off by a kill
	final := make([]int64, clients)   // each client's last accepted seq
	answered := make([]map[int64]bool, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		answered[c] = map[int64]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			id := fmt.Sprintf("wcrash-%d", c)
			next := int64(1)
			pending := false // the last request's seqs are not all accepted: they may be committed
			for !stop.Load() || pending {
				pending = true
				n := 1 + int(next)%4 // 1 to 4 transactions per request
				var txs []wire.ClientTransaction
				for s := next; s < next+int64(n); s++ {
					txs = append(txs, wire.ClientTransaction{Seq: s, Mutations: []wire.Mutation{
						{Op: wire.OpInsert, Table: "wcrash_log", Values: map[string]any{"client": id, "seq": s}},
						{Op: wire.OpInsert, Table: "wcrash_rows", Values: map[string]any{"id": fmt.Sprintf("%s/%d", id, s)}},
					}})
				}
				rs, err := wcrashPost(hc, v.URL, wire.MutationRequest{ClientID: id, Transactions: txs})
				if err != nil {
					broken.Add(1)
					time.Sleep(5 * time.Millisecond) // back off while volt restarts
					continue
				}
				pending = false
				for _, r := range rs {
					if r.Status == wire.StatusRetry {
						pending = true
						break
					}
					if r.Status != wire.StatusAccepted || r.Seq != next {
						errs <- fmt.Errorf("%s: seq %d answered %+v", id, next, r)
						return
					}
					answered[c][r.Seq] = true
					final[c] = r.Seq
					accepted.Add(1)
					next++
				}
			}
		}()
	}
	for round := 0; round < rounds; round++ {
		// Kill while writes flow: once this run of volt accepted some.
		from := accepted.Load()
		for accepted.Load() < from+20 {
			select {
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(time.Millisecond):
			}
		}
		v.Kill()
		v.Restart()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if broken.Load() == 0 {
		t.Fatal("no request was cut off by a kill")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	total := int64(0)
	for c := 0; c < clients; c++ {
		id := fmt.Sprintf("wcrash-%d", c)
		total += final[c]
		var rows, distinct, maxSeq, receipts, last int64
		if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0) FROM wcrash_log WHERE client = $1`, id).Scan(&rows, &distinct, &maxSeq); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM volt.receipts WHERE client_id = $1 AND status = 'accepted'), (SELECT last_seq FROM volt.clients WHERE client_id = $1)`, id).Scan(&receipts, &last); err != nil {
			t.Fatal(err)
		}
		if rows != final[c] || distinct != final[c] || maxSeq != final[c] || receipts != final[c] || last != final[c] {
			t.Fatalf("%s: %d seqs answered accepted, but %d log rows (%d seqs, up to %d), %d receipts, last_seq %d", id, final[c], rows, distinct, maxSeq, receipts, last)
		}
		for s := int64(1); s <= final[c]; s++ {
			if !answered[c][s] {
				t.Fatalf("%s: seq %d never answered", id, s)
			}
		}
	}
	var shared int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT xid8 FROM volt.receipts GROUP BY xid8 HAVING count(DISTINCT client_id) > 1) s`).Scan(&shared); err != nil {
		t.Fatal(err)
	}
	if shared == 0 {
		t.Fatal("no batch held several clients' transactions: group commit was not in play")
	}
	t.Logf("%d kills, %d seqs accepted exactly once, %d requests cut off or refused, %d Postgres transactions shared by several clients", rounds, total, broken.Load(), shared)
}

// wcrashPost sends one request; any failure to get a 200 answer (volt
// killed or restarting) is an error to resend on.
func wcrashPost(hc *http.Client, url string, req wire.MutationRequest) ([]wire.MutationResult, error) {
	body, _ := json.Marshal(req)
	resp, err := hc.Post(url+wire.MutationsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out wire.MutationResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return out.Results, nil
}
