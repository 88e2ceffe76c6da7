package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"
)

const (
	s13One      = "s13_one"
	s13Many     = "s13_many"
	s13Target   = "a fresh client downloads ≤ 2× the live state after compaction; log bytes ≤ 2× state (Electric #4470: 120 updates → 120 ops)"
	s13Batch    = 1000 // rows per UPDATE transaction in part (b)
	s13SeenWait = 60 * time.Second
	s13Marker   = "s13 marker, last update"
)

// opMarker starts the headers of every data message (insert, update,
// delete); control messages have none.
var opMarker = []byte(`"operation":"`)

// runS13 measures log growth: (a) one row updated `updates` times, each in
// its own transaction, (b) a table of `rows` rows updated in full `rounds`
// times (1 000-row transactions). Both shapes exist before the updates.
// Then a fresh client downloads each shape from offset=-1; repeated for up
// to compactWait (compaction may need time), keeping the smallest. The
// baseline is the live state: a new shape of the same rows (where id > 0),
// downloaded at the same moment.
func runS13(ctx context.Context, env *Env, updates, rows, rounds int, compactWait time.Duration) ([]Row, error) {
	// volt serve's default compaction thresholds; old logs are retired
	// after 2 s so that the disk figures show the compacted log.
	if env.serverHasFlag("compact-grace") {
		env.extraArgs = []string{"-compact-grace", "2s"}
		defer func() { env.extraArgs = nil }()
		if err := env.RestartServer(ctx); err != nil {
			return nil, err
		}
	}
	parts := []*s13Part{
		{name: "(a) 1 row updated", table: s13One, rows: 1, updates: updates},
		{name: "(b) table updated uniformly", table: s13Many, rows: rows, updates: rows * rounds, rounds: rounds},
	}
	client := newClient(2)
	defer client.CloseIdleConnections()
	for _, p := range parts {
		if err := createItems(ctx, env, p.table, p.rows); err != nil {
			return nil, err
		}
		res, err := syncShape(ctx, client, newShapeReq(env.URL, p.table, ""))
		if err != nil {
			return nil, fmt.Errorf("%s: create shape: %w", p.table, err)
		}
		p.handle = res.state.handle
	}
	start := time.Now()
	if err := s13UpdateOne(ctx, env, updates); err != nil {
		return nil, err
	}
	if err := s13UpdateMany(ctx, env, rows, rounds); err != nil {
		return nil, err
	}
	env.progress("S13: %d + %d updates in %s", updates, rows*rounds+1, time.Since(start).Round(time.Millisecond))
	var out []Row
	for _, p := range parts {
		if err := p.measure(ctx, env, client, compactWait); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			out = append(out, p.failedRow(err.Error()))
			continue
		}
		env.progress("S13 %s: %s", p.name, p.best)
		out = append(out, p.row())
	}
	return out, nil
}

// s13UpdateOne updates row 1 of s13_one n times, one transaction each; the
// last sets the marker.
func s13UpdateOne(ctx context.Context, env *Env, n int) error {
	for i := 1; i <= n; i++ {
		title := fmt.Sprintf("update %06d", i)
		if i == n {
			title = s13Marker
		}
		if _, err := env.Pool.Exec(ctx, `UPDATE `+s13One+` SET title = $1, priority = $2 WHERE id = 1`, title, i); err != nil {
			return fmt.Errorf("update %s: %w", s13One, err)
		}
	}
	return nil
}

// s13UpdateMany updates every row of s13_many rounds times, s13Batch rows
// per transaction, then sets the marker on row 1.
func s13UpdateMany(ctx context.Context, env *Env, rows, rounds int) error {
	for r := 1; r <= rounds; r++ {
		for lo := 1; lo <= rows; lo += s13Batch {
			_, err := env.Pool.Exec(ctx, `UPDATE `+s13Many+` SET priority = priority + 1, title = 'round ' || $1::int || ' of ' || id
				WHERE id BETWEEN $2 AND $3`, r, lo, lo+s13Batch-1)
			if err != nil {
				return fmt.Errorf("update %s: %w", s13Many, err)
			}
		}
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE `+s13Many+` SET title = $1 WHERE id = 1`, s13Marker); err != nil {
		return fmt.Errorf("update %s: %w", s13Many, err)
	}
	return nil
}

// s13Part is one table of S13.
type s13Part struct {
	name, table    string
	rows, updates  int
	rounds         int
	handle         string
	best, live     s13Download
	tries          int
	firstSeen      time.Duration // from the first download attempt to one that had every update
	waited         time.Duration // downloading again for compaction
	disk, liveDisk string
	compacted      bool // the fresh download came from a successor handle
}

// s13Download is one fresh client's download from offset=-1.
type s13Download struct {
	bytes    int64
	messages int
	requests int
	handle   string
}

func (d s13Download) String() string {
	return fmt.Sprintf("%d messages, %.1f KB in %d request(s)", d.messages, float64(d.bytes)/1024, d.requests)
}

// s13Fetch reads q from offset=-1 to up-to-date and reports whether the
// marker was in it.
func s13Fetch(ctx context.Context, client *http.Client, q shapeReq) (s13Download, bool, error) {
	var d s13Download
	st := startState()
	var buf bytes.Buffer
	seen := false
	for d.requests < 100_000 {
		p, err := get(ctx, client, q.url(st, false), &buf)
		if err != nil {
			return d, false, err
		}
		d.requests++
		d.bytes += int64(len(p.body))
		d.messages += bytes.Count(p.body, opMarker)
		seen = seen || bytes.Contains(p.body, []byte(s13Marker))
		st.advance(p)
		if p.upToDate() {
			d.handle = st.handle
			return d, seen, nil
		}
	}
	return d, seen, fmt.Errorf("not up to date after %d requests", d.requests)
}

// measure waits until a fresh download has every update, downloads the
// live state through a new shape, then downloads the shape again for up to
// compactWait (until within 2× the live bytes) and keeps the smallest.
func (p *s13Part) measure(ctx context.Context, env *Env, client *http.Client, compactWait time.Duration) error {
	q := newShapeReq(env.URL, p.table, "")
	start := time.Now()
	for {
		d, seen, err := s13Fetch(ctx, client, q)
		if err != nil {
			return err
		}
		if seen {
			p.best, p.tries = d, 1
			break
		}
		if time.Since(start) > s13SeenWait {
			return fmt.Errorf("the last update was not in a fresh download within %s", s13SeenWait)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	p.firstSeen = time.Since(start)
	// The live state first, so the wait can stop once the target is met.
	live, _, err := s13Fetch(ctx, client, newShapeReq(env.URL, p.table, "id > 0"))
	if err != nil {
		return fmt.Errorf("live state: %w", err)
	}
	if live.messages != p.rows {
		return fmt.Errorf("the live state has %d messages, want %d rows", live.messages, p.rows)
	}
	p.live = live
	waited := time.Now()
	for time.Since(waited) < compactWait && p.best.bytes > 2*live.bytes {
		p.tries++
		if !sleepCtx(ctx, time.Second) {
			return ctx.Err()
		}
		d, _, err := s13Fetch(ctx, client, q)
		if err != nil {
			return err
		}
		if d.bytes < p.best.bytes {
			p.best = d
		}
	}
	p.waited = time.Since(waited)
	p.disk, p.liveDisk = s13Disk(ctx, env, p.best.handle), s13Disk(ctx, env, live.handle)
	p.compacted = p.best.handle != p.handle
	return nil
}

// s13Disk is a shape's log bytes: from GET /v1/stats?handle= when the
// server has it, else from its directory under the storage dir, else n/a.
func s13Disk(ctx context.Context, env *Env, handle string) string {
	if stats, ok := env.serverStats(ctx, "handle="+handle); ok {
		if b, ok := statsShapeBytes(stats, handle); ok {
			return fmt.Sprintf("%.1f KB (/v1/stats)", b/1024)
		}
	}
	if b, ok := env.shapeDiskBytes(handle); ok {
		return fmt.Sprintf("%.1f KB (storage dir)", float64(b)/1024)
	}
	return "n/a"
}

func (p *s13Part) params() string {
	if p.rounds == 0 {
		return fmt.Sprintf("%s: %d single-row UPDATE transactions on a 1-row table; then a fresh client from offset=-1 (volt serve's default compaction)", p.name, p.updates)
	}
	return fmt.Sprintf("%s: %s rows, every row updated %d times (%d-row transactions); then a fresh client from offset=-1 (volt serve's default compaction)", p.name, count(p.rows), p.rounds, s13Batch)
}

func (p *s13Part) row() Row {
	return Row{
		Scenario: "S13 log growth and compaction",
		Params:   p.params(),
		Volt: fmt.Sprintf("fresh client: %s (smallest of %d downloads over %s%s); log on disk %s",
			p.best, p.tries, p.waited.Round(100*time.Millisecond), map[bool]string{true: ", from the compacted successor handle", false: ""}[p.compacted], p.disk),
		Baseline: fmt.Sprintf("live state (a new shape of the same rows): %s; log on disk %s", p.live, p.liveDisk),
		Ratio:    ratio(float64(p.best.bytes), float64(p.live.bytes)), RatioOf: "bytes",
		MoreRatios: []ExtraRatio{{Of: "messages", Value: ratio(float64(p.best.messages), float64(p.live.messages))}},
		Target:     s13Target,
		VoltValue:  float64(p.best.bytes), BaselineValue: float64(p.live.bytes),
	}
}

func (p *s13Part) failedRow(reason string) Row {
	return Row{Scenario: "S13 log growth and compaction", Params: p.params(), Volt: "FAILED: " + reason,
		Baseline: "–", Target: s13Target, Err: reason}
}
