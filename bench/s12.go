package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

const (
	s12Table    = "s12_items"
	s12RowBytes = 4096 // the wide column of each row
	s12Target   = "≤ 256 KB pinned per stalled client; reaped after a stall timeout (Electric: 19.6 MB per client before #4708, < 1 MB after)"
	// s12StallTimeout is passed as -stall-timeout when volt serve has it.
	s12StallTimeout = 5 * time.Second
	// s12RcvBuf is the stalled clients' socket receive buffer, so the
	// kernel absorbs little of the body on their side.
	s12RcvBuf = 4096
	s12Settle = time.Second
)

// runS12 measures stalled clients: c raw TCP connections each send a GET
// for a shape whose offset=-1 response is tens of MB, read its status
// line and then nothing more. It reports the server's VmRSS growth per
// stalled client and whether (and when) the server closes them, watching
// its open files. volt serve runs with -chunk-bytes above the body size,
// so the snapshot is one response, and with -stall-timeout 5s when it has
// that flag. The baseline is the idle server's RSS.
func runS12(ctx context.Context, env *Env, rows, clients int, watch time.Duration) ([]Row, error) {
	body := rows * s12RowBytes
	env.extraArgs = []string{"-chunk-bytes", strconv.Itoa(body * 2)}
	stall := env.serverHasFlag("stall-timeout")
	if stall {
		env.extraArgs = append(env.extraArgs, "-stall-timeout", s12StallTimeout.String())
		watch = max(watch, s12StallTimeout+5*time.Second)
	}
	defer func() { env.extraArgs = nil }()
	if err := env.RestartServer(ctx); err != nil {
		return nil, err
	}
	env.progress("S12: loading %d rows of %d bytes into %s", rows, s12RowBytes, s12Table)
	if err := createWideTable(ctx, env, rows); err != nil {
		return nil, err
	}
	q := newShapeReq(env.URL, s12Table, "")
	client := newClient(1)
	var buf bytes.Buffer
	p, err := get(ctx, client, q.url(startState(), false), &buf)
	client.CloseIdleConnections()
	if err != nil {
		return nil, fmt.Errorf("first read: %w", err)
	}
	r := s12Result{clients: clients, body: len(p.body), stallFlag: stall, watch: watch}
	buf = bytes.Buffer{} // let go of the body
	r, err = s12Stall(ctx, env, q, r)
	if died, rerr := env.revive(ctx); rerr != nil {
		return nil, rerr
	} else if died != "" {
		return []Row{s12FailedRow(rows, clients, died)}, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return []Row{s12FailedRow(rows, clients, err.Error())}, nil
	}
	env.progress("S12: %s", r)
	return []Row{s12Row(rows, r)}, nil
}

// createWideTable makes s12_items with rows rows of ≈ s12RowBytes each.
func createWideTable(ctx context.Context, env *Env, rows int) error {
	stmts := []string{
		`CREATE TABLE ` + s12Table + ` (id bigint PRIMARY KEY, owner_id int NOT NULL, body text NOT NULL)`,
		fmt.Sprintf(`INSERT INTO %s SELECT g, g %% 10, repeat(md5(g::text), %d) FROM generate_series(1, %d) g`, s12Table, s12RowBytes/32, rows),
		`VACUUM (ANALYZE) ` + s12Table,
	}
	for _, s := range stmts {
		if _, err := env.Pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create %s: %w", s12Table, err)
		}
	}
	return nil
}

// s12Result is one stall.
type s12Result struct {
	clients   int
	body      int // bytes of the offset=-1 response
	stallFlag bool
	watch     time.Duration
	idleRSS   int64
	peakRSS   int64 // highest VmRSS sampled while the clients were stalled
	endRSS    int64
	idleFDs   int
	heldFDs   int           // server fds above idle once all requests were answered
	dropped   time.Duration // all stalled connections closed by the server this long after the last request (0: not within watch)
	left      int           // fds still above idle at the end of the watch
	health    time.Duration // a /v1/health request during the stall
	healthErr string
}

func (r s12Result) perClient() float64 { return float64(r.peakRSS-r.idleRSS) / float64(r.clients) }

func (r s12Result) String() string {
	s := fmt.Sprintf("%d stalled on a %.1f MB body: RSS %s idle → peak %s (%+.0f KB/client), %s at the end; ",
		r.clients, float64(r.body)/1e6, mib(r.idleRSS), mib(r.peakRSS), r.perClient()/1024, mib(r.endRSS))
	if r.dropped > 0 {
		s += fmt.Sprintf("server closed all after %s", r.dropped.Round(100*time.Millisecond))
	} else {
		s += fmt.Sprintf("server still held %d of %d after %s", min(r.left, r.clients), r.clients, r.watch)
	}
	if r.stallFlag {
		s += fmt.Sprintf(" (-stall-timeout %s)", s12StallTimeout)
	} else {
		s += " (volt serve has no -stall-timeout flag)"
	}
	if r.healthErr != "" {
		return s + "; /v1/health during the stall: " + r.healthErr
	}
	return s + fmt.Sprintf("; /v1/health during the stall: %s", ms(r.health))
}

// s12Stall opens the stalled connections and watches the server.
func s12Stall(ctx context.Context, env *Env, q shapeReq, r s12Result) (s12Result, error) {
	if !sleepCtx(ctx, s12Settle) {
		return r, ctx.Err()
	}
	var err error
	if r.idleRSS, _, err = env.ServerMemory(); err != nil {
		return r, err
	}
	if r.idleFDs, err = env.ServerFDs(); err != nil {
		return r, err
	}
	u, err := url.Parse(q.url(startState(), false))
	if err != nil {
		return r, err
	}
	conns := make([]net.Conn, 0, r.clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range r.clients {
		c, err := stalledGet(ctx, u)
		if err != nil {
			return r, fmt.Errorf("stalled client %d: %w", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	sent := time.Now()
	r.peakRSS = r.idleRSS
	health := make(chan timedErr, 1)
	go func() { health <- healthDuringStall(ctx, env) }()
	for time.Since(sent) < r.watch {
		rss, _, err := env.ServerMemory()
		if err != nil {
			return r, err
		}
		fds, err := env.ServerFDs()
		if err != nil {
			return r, err
		}
		r.peakRSS, r.endRSS, r.left = max(r.peakRSS, rss), rss, fds-r.idleFDs
		r.heldFDs = max(r.heldFDs, r.left)
		if r.left <= 0 {
			r.dropped = time.Since(sent)
			break
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return r, ctx.Err()
		}
	}
	h := <-health
	r.health = h.took
	if h.err != nil {
		r.healthErr = h.err.Error()
	}
	return r, nil
}

type timedErr struct {
	took time.Duration
	err  error
}

// healthDuringStall times a GET /v1/health once the stall has settled.
func healthDuringStall(ctx context.Context, env *Env) timedErr {
	if !sleepCtx(ctx, s12Settle) {
		return timedErr{err: ctx.Err()}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	var b bytes.Buffer
	start := time.Now()
	_, err := get(ctx, hc, env.URL+"/v1/health", &b)
	return timedErr{took: time.Since(start), err: err}
}

// stalledGet connects with a small receive buffer, sends the GET, reads
// the status line (so the server has started the body) and returns the
// connection unread from there on.
func stalledGet(ctx context.Context, u *url.URL) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, s12RcvBuf)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	head := make([]byte, 12)
	if _, err := readFull(c, head); err != nil {
		c.Close()
		return nil, fmt.Errorf("read status line: %w", err)
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		c.Close()
		return nil, fmt.Errorf("answered %q", head)
	}
	return c, nil
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func s12Params(rows, clients int) string {
	return fmt.Sprintf("%d raw TCP clients (%d B receive buffer) GET one shape from offset=-1 (%s rows × %d B, one response), read the status line, then stop reading",
		clients, s12RcvBuf, count(rows), s12RowBytes)
}

func s12Row(rows int, r s12Result) Row {
	return Row{
		Scenario: "S12 stalled clients",
		Params:   s12Params(rows, r.clients),
		Volt:     r.String(),
		Baseline: "idle server: RSS " + mib(r.idleRSS),
		Ratio:    ratio(float64(r.peakRSS), float64(r.idleRSS)), RatioOf: "peak RSS",
		Target:    s12Target,
		VoltValue: r.perClient() / 1024, BaselineValue: float64(r.idleRSS) / 1024,
	}
}

func s12FailedRow(rows, clients int, reason string) Row {
	return Row{Scenario: "S12 stalled clients", Params: s12Params(rows, clients), Volt: "FAILED: " + reason,
		Baseline: "–", Target: s12Target, Err: reason}
}
