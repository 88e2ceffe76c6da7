package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/voltsync/volt"
)

const (
	s5Table       = "s5_items"
	s5Rounds      = 3
	s5Target      = "≤ 100 ms mean at 1 000 clients (50-row tx); ≤ 16 KB per parked poll (S11)"
	s5WaitTimeout = 30 * time.Second
)

// runS5 measures write fan-out: C clients long-poll one shape, one row is
// inserted, and each client's receive time is taken from sending the INSERT
// (from COMMIT returning, most receipts of small fan-outs would read 0: the
// change often reaches the clients before the COMMIT acknowledgement reaches
// the writer). Baseline: the same with C = 1.
func runS5(ctx context.Context, env *Env, clients []int) ([]Row, error) {
	if err := createItems(ctx, env, s5Table, 10); err != nil {
		return nil, err
	}
	q := newShapeReq(env.URL, s5Table, "")
	client := newClient(1)
	res, err := syncShape(ctx, client, q)
	client.CloseIdleConnections()
	if err != nil {
		return nil, err
	}
	st := res.state
	one, err := fanout(ctx, env, q, &st, 1)
	if err != nil {
		return nil, fmt.Errorf("C = 1: %w", err)
	}
	env.progress("S5: C=1 %s", one.lat.full())
	if err := createNotifyTable(ctx, env); err != nil {
		return nil, err
	}
	pl := env.plot("s5", "S5: one insert to C live clients, time to each client", "clients C", "ms from sending the INSERT")
	s5Points(ctx, env, pl, 1, one.lat)
	var rows []Row
	for _, c := range clients {
		r, err := fanout(ctx, env, q, &st, c)
		if err != nil {
			return nil, fmt.Errorf("C = %d: %w", c, err)
		}
		env.progress("S5: C=%d %s", c, r.lat.full())
		rows = append(rows, s5Row(c, r, one))
		pl.add("volt p50", float64(c), msf(r.lat.p50))
		pl.add("volt max", float64(c), msf(r.lat.max))
		pl.hline("target mean 100 ms at 1k", 100)
		nd, err := s5Points(ctx, env, pl, c, r.lat)
		rows = append(rows, notifyRow(c, r.lat, nd, err))
	}
	return rows, nil
}

// s5Points runs the LISTEN/NOTIFY fan-out at c listeners (when Postgres
// allows that many) and plots it beside volt's figures at c.
func s5Points(ctx context.Context, env *Env, pl *Plot, c int, volt dist) (dist, error) {
	if c == 1 {
		pl.add("volt p50", 1, msf(volt.p50))
		pl.add("volt max", 1, msf(volt.max))
	}
	if c > maxNotifyListeners {
		return dist{}, fmt.Errorf("not run: %d listeners would need %d Postgres backends (the bench allows %d)", c, c, maxNotifyListeners)
	}
	nd, err := notifyFanout(ctx, env, c, s5Rounds)
	if err != nil {
		return dist{}, fmt.Errorf("LISTEN/NOTIFY fan-out: %w", err)
	}
	env.progress("S5: LISTEN/NOTIFY C=%d %s", c, nd.full())
	pl.add("NOTIFY p50 (baseline)", float64(c), msf(nd.p50))
	pl.add("NOTIFY max (baseline)", float64(c), msf(nd.max))
	return nd, nil
}

func s5Row(c int, r, one fanoutResult) Row {
	return Row{
		Scenario: "S5 fan-out, one insert",
		Params:   fmt.Sprintf("C=%s live long polls on one shape, %d single-row inserts, timed from sending the INSERT", count(c), s5Rounds),
		Volt:     fmt.Sprintf("%s; RSS %+.1f KB/parked poll", r.lat.full(), r.rssPerPoll/1024),
		Baseline: "C=1: " + one.lat.full(),
		Ratio:    ratio(msf(r.lat.max), msf(one.lat.max)), RatioOf: "max",
		Target:    s5Target,
		VoltValue: msf(r.lat.max), BaselineValue: msf(one.lat.max),
	}
}

// fanoutResult is the latency of every client over every round, and the
// server's resident memory per parked poll in the first round.
type fanoutResult struct {
	lat        dist
	rssPerPoll float64
}

// fanout runs s5Rounds rounds with c clients, advancing st past each insert.
func fanout(ctx context.Context, env *Env, q shapeReq, st *shapeState, c int) (fanoutResult, error) {
	if lim := fileLimit(); uint64(c)+100 > lim {
		return fanoutResult{}, fmt.Errorf("%d clients need more than the open-files limit %d", c, lim)
	}
	client := newClient(c)
	defer client.CloseIdleConnections()
	var all []time.Duration
	var res fanoutResult
	for round := range s5Rounds {
		lat, perPoll, err := fanoutRound(ctx, env, client, q, st, c)
		if err != nil {
			return res, fmt.Errorf("round %d: %w", round+1, err)
		}
		if round == 0 {
			res.rssPerPoll = perPoll
		}
		all = append(all, lat...)
	}
	res.lat = summarize(all)
	return res, nil
}

// clientResult is one client's receipt of the insert.
type clientResult struct {
	at  time.Time
	st  shapeState
	err error
}

// fanoutRound parks c long polls, inserts one row and times each receipt.
func fanoutRound(ctx context.Context, env *Env, client *http.Client, q shapeReq, st *shapeState, c int) ([]time.Duration, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, s5WaitTimeout)
	defer cancel()
	rssBefore, _, err := env.ServerMemory()
	if err != nil {
		return nil, 0, err
	}
	var wrote sync.WaitGroup
	wrote.Add(c)
	results := make(chan clientResult, c)
	from := *st
	for range c {
		go func() { results <- awaitInsert(ctx, client, q, from, &wrote) }()
	}
	if err := waitGroup(ctx, &wrote); err != nil {
		return nil, 0, fmt.Errorf("sending %d long polls: %w", c, err)
	}
	time.Sleep(200*time.Millisecond + time.Duration(c)*100*time.Microsecond) // let the server park them
	rssParked, _, err := env.ServerMemory()
	if err != nil {
		return nil, 0, err
	}
	sent := time.Now()
	if _, err := insertRow(ctx, env, q.params.Get(volt.ParamTable), 0); err != nil {
		return nil, 0, err
	}
	lat := make([]time.Duration, 0, c)
	for range c {
		r := <-results
		if r.err != nil {
			return nil, 0, r.err
		}
		lat = append(lat, r.at.Sub(sent))
		*st = r.st
	}
	return lat, float64(rssParked-rssBefore) / float64(c), nil
}

// awaitInsert long-polls from st until a response carries an insert.
func awaitInsert(ctx context.Context, client *http.Client, q shapeReq, st shapeState, wrote *sync.WaitGroup) clientResult {
	var once sync.Once
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(wrote.Done) }}
	tctx := httptrace.WithClientTrace(ctx, trace)
	defer once.Do(wrote.Done) // an early failure must not hang the round
	var buf bytes.Buffer
	for {
		p, err := get(tctx, client, q.url(st, true), &buf)
		if err != nil {
			return clientResult{err: err}
		}
		st.advance(p)
		if bytes.Contains(p.body, insertMarker) {
			return clientResult{at: p.received, st: st}
		}
	}
}

// waitGroup waits for wg or ctx.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
