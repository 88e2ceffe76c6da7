package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
)

const (
	s10Table      = "s10_items" // written through POST /v1/mutations, followed as shapes
	s10PlainTable = "s10_plain" // the INSERT baseline's table: same schema, in no shape
	s10Target     = "p50 ≤ 5 ms, p99 ≤ 20 ms at 1 k writes/s; ≥ 5 k writes/s sustained"
	s10PostTarget = "– (the write half of S10: p50 ≤ 5 ms, p99 ≤ 20 ms round trip)"
	s10Title      = "a row written by volt bench"
	// s10MaxWrites bounds each writer of a phase, whatever the duration.
	s10MaxWrites    = 20_000
	s10AwaitTimeout = 10 * time.Second
	// s10MaxRetries bounds the resends of one transaction answered "retry".
	s10MaxRetries = 50
)

// runS10 measures the write round trip: W writers, each with its own
// client_id and its own live shape (owner = '<writer>'), POST one
// single-insert transaction to /v1/mutations and wait until the row arrives
// in their shape before writing the next. Baselines of the same W in the
// same run: plain autocommit INSERTs over pgx (one connection per writer),
// and the POST alone (the answer, without waiting for the echo).
func runS10(ctx context.Context, env *Env, writers []int, d time.Duration) ([]Row, error) {
	if err := createS10Tables(ctx, env); err != nil {
		return nil, err
	}
	var ids atomic.Int64 // primary keys, unique over the scenario
	var rows []Row
	for _, w := range writers {
		r, err := s10Level(ctx, env, &ids, w, d)
		if err != nil {
			return nil, fmt.Errorf("W = %d: %w", w, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// s10Level runs the three phases for w writers, each for d.
func s10Level(ctx context.Context, env *Env, ids *atomic.Int64, w int, d time.Duration) ([]Row, error) {
	plain, err := drive(ctx, env, w, d, func(ctx context.Context, i int) (writeFunc, func(), error) {
		return plainWriter(ctx, env, ids, fmt.Sprintf("w%d-plain-%d", w, i))
	})
	if err != nil {
		return nil, fmt.Errorf("INSERT baseline: %w", err)
	}
	env.progress("S10: W=%d INSERT %s, %s", w, plain.lat.full(), rate(plain.perSec(), "inserts"))
	client := newClient(w)
	defer client.CloseIdleConnections()
	post, err := drive(ctx, env, w, d, func(ctx context.Context, i int) (writeFunc, func(), error) {
		return postWriter(env, client, ids, fmt.Sprintf("w%d-post-%d", w, i)), func() {}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("POST alone: %w", err)
	}
	env.progress("S10: W=%d POST alone %s, %s", w, post.lat.full(), rate(post.perSec(), "writes"))
	rt, err := drive(ctx, env, w, d, func(ctx context.Context, i int) (writeFunc, func(), error) {
		return roundTripWriter(ctx, env, client, ids, fmt.Sprintf("w%d-rt-%d", w, i))
	})
	if err != nil {
		return nil, fmt.Errorf("round trip: %w", err)
	}
	env.progress("S10: W=%d round trip %s, %s (POST answered %s)", w, rt.lat.full(), rate(rt.perSec(), "writes"), rt.post)
	pl := env.plot("s10", "S10: write round trip latency vs concurrent writers", "writers W", "ms")
	x := float64(w)
	pl.add("volt round trip p50", x, msf(rt.lat.p50))
	pl.add("volt round trip p99", x, msf(rt.lat.p99))
	pl.add("volt POST alone p50", x, msf(post.lat.p50))
	pl.add("INSERT over pgx p50 (baseline)", x, msf(plain.lat.p50))
	pl.add("INSERT over pgx p99 (baseline)", x, msf(plain.lat.p99))
	pl.hline("target p50 5 ms", 5)
	pl.hline("target p99 20 ms", 20)
	return []Row{s10RoundTripRow(w, d, rt, post, plain), s10PostRow(w, d, post, plain)}, nil
}

func s10RoundTripRow(w int, d time.Duration, rt, post, plain s10Run) Row {
	volt := fmt.Sprintf("%s; %s accepted (%d in %s); POST answered %s; echo before the answer %.0f%%",
		rt.lat.full(), rate(rt.perSec(), "writes"), rt.writes, rt.elapsed.Round(time.Millisecond), rt.post,
		100*float64(rt.echoFirst)/float64(max(1, rt.writes)))
	return Row{
		Scenario: "S10 write→echo round trip",
		Params: fmt.Sprintf("W=%d writers, each its own client_id and live shape `owner = '<writer>'`; "+
			"1-insert transactions for %s, the next sent when the echo arrives; timed from sending the POST", w, d),
		Volt:     volt + retriesText(rt.retries) + pgText(rt),
		Baseline: plainText(plain),
		Ratio:    ratio(msf(rt.lat.p50), msf(plain.lat.p50)), RatioOf: "p50",
		MoreRatios: []ExtraRatio{
			{Of: "p99", Value: ratio(msf(rt.lat.p99), msf(plain.lat.p99))},
			{Of: "writes/s", Value: ratio(rt.perSec(), plain.perSec())},
			{Of: "p50 ÷ POST alone", Value: ratio(msf(rt.lat.p50), msf(post.lat.p50))},
			{Of: "Postgres CPU per write", Value: ratio(rt.pgPerWrite(), plain.pgPerWrite())},
		},
		Target:    s10Target,
		VoltValue: msf(rt.lat.p50), BaselineValue: msf(plain.lat.p50),
	}
}

func s10PostRow(w int, d time.Duration, post, plain s10Run) Row {
	return Row{
		Scenario: "S10 POST alone (answer, no echo)",
		Params:   fmt.Sprintf("W=%d writers, each its own client_id; 1-insert transactions for %s, the next sent when the answer arrives", w, d),
		Volt: fmt.Sprintf("%s; %s accepted (%d in %s)", post.lat.full(), rate(post.perSec(), "writes"),
			post.writes, post.elapsed.Round(time.Millisecond)) + retriesText(post.retries) + pgText(post),
		Baseline: plainText(plain),
		Ratio:    ratio(msf(post.lat.p50), msf(plain.lat.p50)), RatioOf: "p50",
		MoreRatios: []ExtraRatio{
			{Of: "p99", Value: ratio(msf(post.lat.p99), msf(plain.lat.p99))},
			{Of: "writes/s", Value: ratio(post.perSec(), plain.perSec())},
			{Of: "Postgres CPU per write", Value: ratio(post.pgPerWrite(), plain.pgPerWrite())},
		},
		Target:    s10PostTarget,
		VoltValue: msf(post.lat.p50), BaselineValue: msf(plain.lat.p50),
	}
}

func plainText(plain s10Run) string {
	return fmt.Sprintf("INSERT over pgx: %s; %s (%d)", plain.lat.full(), rate(plain.perSec(), "inserts"), plain.writes) + pgText(plain)
}

func retriesText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d retry answers resent", n)
}

// createS10Tables makes the written table and the baseline's, alike.
func createS10Tables(ctx context.Context, env *Env) error {
	for _, t := range []string{s10Table, s10PlainTable} {
		for _, s := range []string{
			fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, owner text NOT NULL, title text NOT NULL, n bigint NOT NULL)`, t),
			fmt.Sprintf(`CREATE INDEX ON %s (owner)`, t),
		} {
			if _, err := env.Pool.Exec(ctx, s); err != nil {
				return fmt.Errorf("create S10 tables: %w", err)
			}
		}
	}
	return nil
}

// s10Sample is one write: its latency (the headline of its phase) and, for
// the round trip, when the POST was answered and whether the echo came first.
type s10Sample struct {
	lat, post time.Duration
	echoFirst bool
	retries   int
}

// writeFunc makes one write and times it.
type writeFunc func(ctx context.Context) (s10Sample, error)

// s10Run is one phase: every writer's samples pooled, over its wall time.
type s10Run struct {
	lat, post dist
	writes    int
	elapsed   time.Duration
	echoFirst int
	retries   int
	pgCPU     time.Duration // Postgres' CPU time over the phase
}

func (r s10Run) perSec() float64 { return float64(r.writes) / r.elapsed.Seconds() }

// pgPerWrite is Postgres' CPU time per write of the phase, in µs.
func (r s10Run) pgPerWrite() float64 {
	return float64(r.pgCPU) / float64(time.Microsecond) / float64(max(1, r.writes))
}

func pgText(r s10Run) string {
	return fmt.Sprintf("; Postgres CPU %.0f µs per write", r.pgPerWrite())
}

// drive sets up w writers (not timed), warms each up with one untimed
// write, then lets them write back to back for d (each at most
// s10MaxWrites) and pools their samples, with Postgres' CPU time over
// the timed part. The first error stops them all.
func drive(ctx context.Context, env *Env, w int, d time.Duration, setup func(ctx context.Context, i int) (writeFunc, func(), error)) (s10Run, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	writes := make([]writeFunc, 0, w)
	for i := range w {
		wf, done, err := setup(ctx, i)
		if err != nil {
			return s10Run{}, fmt.Errorf("writer %d: %w", i, err)
		}
		defer done()
		writes = append(writes, wf)
	}
	each := func(body func(i int, wf writeFunc) error) {
		var wg sync.WaitGroup
		for i, wf := range writes {
			wg.Go(func() {
				if err := body(i, wf); err != nil {
					cancel(fmt.Errorf("writer %d: %w", i, err))
				}
			})
		}
		wg.Wait()
	}
	each(func(_ int, wf writeFunc) error { _, err := wf(ctx); return err })
	if err := context.Cause(ctx); err != nil {
		return s10Run{}, fmt.Errorf("warm-up: %w", err)
	}
	samples := make([][]s10Sample, w)
	pg := env.postgresCPU()
	start := time.Now()
	deadline := start.Add(d)
	each(func(i int, wf writeFunc) error {
		for n := 0; n < s10MaxWrites && time.Now().Before(deadline); n++ {
			s, err := wf(ctx)
			if err != nil {
				return err
			}
			samples[i] = append(samples[i], s)
		}
		return nil
	})
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return s10Run{}, err
	}
	r := pool(samples, elapsed)
	r.pgCPU = max(0, env.postgresCPU()-pg)
	return r, nil
}

func pool(samples [][]s10Sample, elapsed time.Duration) s10Run {
	r := s10Run{elapsed: elapsed}
	var lat, post []time.Duration
	for _, ss := range samples {
		for _, s := range ss {
			lat, post = append(lat, s.lat), append(post, s.post)
			r.retries += s.retries
			if s.echoFirst {
				r.echoFirst++
			}
		}
	}
	r.writes, r.lat, r.post = len(lat), summarize(lat), summarize(post)
	return r
}

// plainWriter inserts single rows, autocommit, on its own connection.
func plainWriter(ctx context.Context, env *Env, ids *atomic.Int64, owner string) (writeFunc, func(), error) {
	conn, err := pgx.Connect(ctx, env.dbURL)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	done := func() { conn.Close(context.Background()) }
	var n int64
	sql := `INSERT INTO ` + s10PlainTable + ` (id, owner, title, n) VALUES ($1, $2, $3, $4)`
	return func(ctx context.Context) (s10Sample, error) {
		n++
		id := ids.Add(1)
		sent := time.Now()
		if _, err := conn.Exec(ctx, sql, id, owner, s10Title, n); err != nil {
			return s10Sample{}, fmt.Errorf("insert: %w", err)
		}
		return s10Sample{lat: time.Since(sent)}, nil
	}, done, nil
}

// postWriter POSTs single-insert transactions and times the answer.
func postWriter(env *Env, client *http.Client, ids *atomic.Int64, owner string) writeFunc {
	w := &mutationWriter{client: client, url: env.URL + volt.MutationsPath, clientID: "bench-" + owner}
	return func(ctx context.Context) (s10Sample, error) {
		id := ids.Add(1)
		sent := time.Now()
		retries, err := w.insert(ctx, id, owner)
		if err != nil {
			return s10Sample{}, err
		}
		lat := time.Since(sent)
		return s10Sample{lat: lat, post: lat, retries: retries}, nil
	}
}

// roundTripWriter follows its own shape (owner = '<owner>') and times each
// write from sending the POST to the row arriving in the shape.
func roundTripWriter(ctx context.Context, env *Env, client *http.Client, ids *atomic.Int64, owner string) (writeFunc, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	rcv, err := followShape(ctx, env, newShapeReq(env.URL, s10Table, "owner = '"+owner+"'"))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	w := &mutationWriter{client: client, url: env.URL + volt.MutationsPath, clientID: "bench-" + owner}
	return func(ctx context.Context) (s10Sample, error) {
		id := ids.Add(1)
		sent := time.Now()
		retries, err := w.insert(ctx, id, owner)
		if err != nil {
			return s10Sample{}, err
		}
		answered := time.Now()
		at, err := rcv.await(ctx, id, s10AwaitTimeout)
		if err != nil {
			return s10Sample{}, fmt.Errorf("echo of accepted row %d: %w", id, err)
		}
		return s10Sample{lat: at.Sub(sent), post: answered.Sub(sent), echoFirst: at.Before(answered), retries: retries}, nil
	}, cancel, nil
}

// mutationWriter is one client queue of POST /v1/mutations.
type mutationWriter struct {
	client   *http.Client
	url      string
	clientID string
	table    string // default s10Table
	seq      int64  // last accepted
	buf      bytes.Buffer
}

// insert sends one transaction inserting row id until it is accepted,
// resending the same seq after a "retry" answer; it returns the resends.
func (w *mutationWriter) insert(ctx context.Context, id int64, owner string) (int, error) {
	table := w.table
	if table == "" {
		table = s10Table
	}
	body, err := json.Marshal(volt.MutationRequest{ClientID: w.clientID, Transactions: []volt.ClientTransaction{{
		Seq: w.seq + 1,
		Mutations: []volt.Mutation{{Op: volt.OpInsert, Table: table, Values: map[string]any{
			"id": id, "owner": owner, "title": s10Title, "n": w.seq + 1,
		}}},
	}}})
	if err != nil {
		return 0, fmt.Errorf("encode request: %w", err)
	}
	for retries := 0; ; retries++ {
		res, err := w.post(ctx, body)
		if err != nil {
			return retries, err
		}
		switch res.Status {
		case volt.StatusAccepted:
			w.seq++
			return retries, nil
		case volt.StatusRetry:
			if retries == s10MaxRetries {
				return retries, fmt.Errorf("seq %d still answered retry after %d resends: %s", w.seq+1, retries, res.Message)
			}
			time.Sleep(time.Millisecond)
		default:
			return retries, fmt.Errorf("seq %d %s (%s): %s", w.seq+1, res.Status, res.Code, res.Message)
		}
	}
}

// post sends one request of a single transaction and returns its result.
func (w *mutationWriter) post(ctx context.Context, body []byte) (volt.MutationResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return volt.MutationResult{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("content-type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return volt.MutationResult{}, fmt.Errorf("POST %s: %w", w.url, err)
	}
	defer resp.Body.Close()
	w.buf.Reset()
	if _, err := w.buf.ReadFrom(resp.Body); err != nil {
		return volt.MutationResult{}, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return volt.MutationResult{}, fmt.Errorf("POST %s: status %d: %.300s", w.url, resp.StatusCode, w.buf.Bytes())
	}
	var mr volt.MutationResponse
	if err := json.Unmarshal(w.buf.Bytes(), &mr); err != nil {
		return volt.MutationResult{}, fmt.Errorf("decode answer %.300q: %w", w.buf.Bytes(), err)
	}
	if len(mr.Results) != 1 {
		return volt.MutationResult{}, fmt.Errorf("%d results for one transaction: %.300s", len(mr.Results), w.buf.Bytes())
	}
	return mr.Results[0], nil
}
