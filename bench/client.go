package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/voltsync/volt"
)

// insertMarker starts the headers of every insert message volt writes; the
// clients count rows with it rather than decoding JSON, as the COPY
// baseline counts lines.
var insertMarker = []byte(`"operation":"insert"`)

// shapeReq is one shape definition on a server.
type shapeReq struct {
	base   string // server URL
	params url.Values
}

func newShapeReq(base, table, where string) shapeReq {
	v := url.Values{volt.ParamTable: {table}}
	if where != "" {
		v.Set(volt.ParamWhere, where)
	}
	return shapeReq{base: base, params: v}
}

// shapeState is where a client stands in a shape.
type shapeState struct {
	handle, offset, cursor string
}

func startState() shapeState { return shapeState{offset: "-1"} }

func (q shapeReq) url(st shapeState, live bool) string {
	v := url.Values{}
	for k, vs := range q.params {
		v[k] = vs
	}
	v.Set(volt.ParamOffset, st.offset)
	if st.handle != "" {
		v.Set(volt.ParamHandle, st.handle)
	}
	if live {
		v.Set(volt.ParamLive, "true")
		if st.cursor != "" {
			v.Set(volt.ParamCursor, st.cursor)
		}
	}
	return q.base + "/v1/shape?" + v.Encode()
}

// page is one 200 response.
type page struct {
	header   http.Header
	body     []byte // valid until the buffer is reused
	received time.Time
}

func (p page) upToDate() bool {
	_, ok := p.header[http.CanonicalHeaderKey(volt.HeaderUpToDate)]
	return ok
}

func (st *shapeState) advance(p page) {
	st.handle = p.header.Get(volt.HeaderHandle)
	st.offset = p.header.Get(volt.HeaderOffset)
	if c := p.header.Get(volt.HeaderCursor); c != "" {
		st.cursor = c
	}
}

// get makes one request and reads the whole body into buf.
func get(ctx context.Context, client *http.Client, u string, buf *bytes.Buffer) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return page{}, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return page{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return page{}, fmt.Errorf("read body of %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return page{}, fmt.Errorf("GET %s: status %d: %.300s", u, resp.StatusCode, buf.Bytes())
	}
	return page{header: resp.Header, body: buf.Bytes(), received: time.Now()}, nil
}

// syncResult is a client's initial sync.
type syncResult struct {
	state    shapeState
	rows     int
	bytes    int64
	requests int
}

// syncShape fetches a shape from offset -1 to up-to-date with non-live
// requests, following electric-offset, as a fresh client does.
func syncShape(ctx context.Context, client *http.Client, q shapeReq) (syncResult, error) {
	res := syncResult{state: startState()}
	var buf bytes.Buffer
	for res.requests < 1_000_000 {
		p, err := get(ctx, client, q.url(res.state, false), &buf)
		if err != nil {
			return res, err
		}
		res.requests++
		res.rows += bytes.Count(p.body, insertMarker)
		res.bytes += int64(len(p.body))
		res.state.advance(p)
		if p.upToDate() {
			return res, nil
		}
	}
	return res, fmt.Errorf("shape %v not up to date after %d requests", q.params, res.requests)
}

// arrival is an inserted row's id and when the client received it.
type arrival struct {
	id int64
	at time.Time
}

// followLive long-polls from st until ctx ends, sending every inserted id
// with its receive time to out.
func followLive(ctx context.Context, client *http.Client, q shapeReq, st shapeState, out chan<- arrival) error {
	var buf bytes.Buffer
	for ctx.Err() == nil {
		p, err := get(ctx, client, q.url(st, true), &buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		st.advance(p)
		ids, err := insertedIDs(p.body)
		if err != nil {
			return err
		}
		for _, id := range ids {
			select {
			case out <- arrival{id: id, at: p.received}:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

// insertedIDs decodes the "id" of every insert message in body.
func insertedIDs(body []byte) ([]int64, error) {
	if !bytes.Contains(body, insertMarker) {
		return nil, nil
	}
	var msgs []struct {
		Value   map[string]*string `json:"value"`
		Headers struct {
			Operation string `json:"operation"`
		} `json:"headers"`
	}
	if err := json.Unmarshal(body, &msgs); err != nil {
		return nil, fmt.Errorf("decode live body: %w", err)
	}
	var ids []int64
	for _, m := range msgs {
		if m.Headers.Operation != "insert" || m.Value["id"] == nil {
			continue
		}
		id, err := strconv.ParseInt(*m.Value["id"], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("insert with id %q: %w", *m.Value["id"], err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// newClient is an HTTP client that keeps up to conns connections open.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}}
}
