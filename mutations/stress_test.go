package mutations_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// stressClient sends its transactions in random batches, resending from
// the first retry, and records every final result.
type stressClient struct {
	id      string
	rnd     *rand.Rand
	txs     []volt.ClientTransaction
	kind    []int // what each transaction does (see stressTxn)
	results map[int64]volt.MutationResult
}

const (
	kindPlain = iota
	kindUnique
	kindCheck
	kindCounter
	kindCounterStale
	kindMissing
	kinds
)

// stressTxn builds transaction seq of kind k. Every transaction logs itself
// in stress_log, so the log must hold exactly the accepted seqs.
func (c *stressClient) stressTxn(seq int64, k int, counter int) volt.ClientTransaction {
	ms := []volt.Mutation{ins("stress_log", row{"client": c.id, "seq": seq})}
	switch k {
	case kindUnique: // sometimes taken by another client
		ms = append(ms, ins("stress_uniq", row{"email": fmt.Sprintf("e%d", c.rnd.IntN(200))}))
	case kindCheck:
		ms = append(ms, ins("stress_uniq", row{"email": fmt.Sprintf("%s-%d", c.id, seq), "v": -1}))
	case kindCounter:
		ms = append(ms, updFrom("stress_counter", row{"client": c.id}, row{"v": counter + 1}, row{"v": counter}))
	case kindCounterStale:
		ms = append(ms, updFrom("stress_counter", row{"client": c.id}, row{"v": 1000000}, row{"v": -5}))
	case kindMissing:
		ms = append(ms, del("stress_counter", row{"client": "nobody"}))
	}
	return txn(seq, ms...)
}

func (c *stressClient) run(t *testing.T, e *env, n int) {
	counter := 0 // the client's belief, corrected after each response
	next := int64(1)
	for next <= int64(n) {
		size := 1 + c.rnd.IntN(12)
		var batch []volt.ClientTransaction
		believed := counter
		for s := next; s < next+int64(size) && s <= int64(n); s++ {
			if int(s) > len(c.txs) {
				k := c.rnd.IntN(kinds)
				c.kind = append(c.kind, k)
				c.txs = append(c.txs, c.stressTxn(s, k, believed))
				if k == kindCounter {
					believed++
				}
			}
			batch = append(batch, c.txs[s-1])
		}
		for _, r := range e.post(c.id, batch...) {
			if r.Status == volt.StatusRetry {
				c.txs = c.txs[:r.Seq-1] // rebuild from the server's state
				c.kind = c.kind[:r.Seq-1]
				break
			}
			c.results[r.Seq] = r
			if r.Status == volt.StatusAccepted && c.kind[r.Seq-1] == kindCounter {
				counter++
			}
			next = r.Seq + 1
		}
		if len(c.txs) > int(next-1) { // built but not sent: rebuild with the true counter
			c.txs, c.kind = c.txs[:next-1], c.kind[:next-1]
		}
	}
}

func TestStressManyClients(t *testing.T) {
	clients, perClient := 50, 200
	if testing.Short() {
		clients, perClient = 10, 50
	}
	e := newEnv(t, mutations.Options{Checked: map[string]bool{"stress_counter": true}},
		`CREATE TABLE stress_log (client text, seq bigint, PRIMARY KEY (client, seq))`,
		`CREATE TABLE stress_uniq (id serial PRIMARY KEY, email text UNIQUE NOT NULL, v int NOT NULL DEFAULT 0 CHECK (v >= 0))`,
		`CREATE TABLE stress_counter (client text PRIMARY KEY, v int NOT NULL)`,
		fmt.Sprintf(`INSERT INTO stress_counter SELECT 'c' || g, 0 FROM generate_series(0, %d) g`, clients-1))
	cs := make([]*stressClient, clients)
	var wg sync.WaitGroup
	for i := range cs {
		cs[i] = &stressClient{id: fmt.Sprintf("c%d", i), rnd: rand.New(rand.NewPCG(uint64(i), 7)), results: map[int64]volt.MutationResult{}}
		wg.Add(1)
		go func() { defer wg.Done(); cs[i].run(t, e, perClient) }()
	}
	wg.Wait()
	accepted, codes := 0, map[string]int{}
	for _, c := range cs {
		counterAccepted := 0
		for seq := int64(1); seq <= int64(perClient); seq++ {
			r, k := c.results[seq], c.kind[seq-1]
			inLog := e.count(`SELECT count(*) FROM stress_log WHERE client = $1 AND seq = $2`, c.id, seq)
			if (r.Status == volt.StatusAccepted) != (inLog == 1) {
				t.Fatalf("%s seq %d: result %+v but log has %d rows", c.id, seq, r, inLog)
			}
			switch {
			case r.Status == volt.StatusAccepted:
				accepted++
				if k == kindCheck || k == kindCounterStale || k == kindMissing {
					t.Fatalf("%s seq %d (kind %d) accepted", c.id, seq, k)
				}
				if k == kindCounter {
					counterAccepted++
				}
			case r.Status == volt.StatusRejected:
				codes[r.Code]++
			default:
				t.Fatalf("%s seq %d: final result %+v", c.id, seq, r)
			}
		}
		if v := e.count(`SELECT v FROM stress_counter WHERE client = $1`, c.id); v != counterAccepted {
			t.Fatalf("%s: counter %d, accepted counter updates %d", c.id, v, counterAccepted)
		}
	}
	if n := e.count(`SELECT count(*) FROM stress_log`); n != accepted {
		t.Fatalf("log %d rows, %d accepted", n, accepted)
	}
	if n := e.count(`SELECT count(*) FROM volt.receipts`); n != clients*perClient {
		t.Fatalf("%d receipts for %d transactions", n, clients*perClient)
	}
	if n := e.count(`SELECT count(*) FROM volt.receipts WHERE status = 'accepted'`); n != accepted {
		t.Fatalf("%d accepted receipts, %d accepted results", n, accepted)
	}
	t.Logf("%d accepted, rejected by code: %v", accepted, codes)
}
