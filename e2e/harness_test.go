package e2e

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/volttest"
)

var voltBin string

func TestMain(m *testing.M) {
	bin, cleanup := volttest.MustBuild()
	voltBin = bin
	pgtest.Main(m, cleanup)
}

// volt is a running volt serve process.
type volt struct{ *volttest.Server }

// startVolt runs volt serve against dbURL ("" for the embedded default)
// with a fresh storage dir; env adds settings.
func startVolt(t *testing.T, dbURL string, env ...string) *volt {
	t.Helper()
	return &volt{volttest.Start(t, voltBin, dbURL, env...)}
}

func freePort(t *testing.T) int { return volttest.FreePort(t) }

// response is one HTTP answer of the shape API.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	Msgs   []message
}

type message struct {
	Key      string             `json:"key"`
	Value    map[string]*string `json:"value"`
	OldValue map[string]*string `json:"old_value"`
	Headers  map[string]any     `json:"headers"`
}

func (m message) control() string { s, _ := m.Headers["control"].(string); return s }
func (m message) op() string      { s, _ := m.Headers["operation"].(string); return s }

func get(t *testing.T, rawURL string, hdr ...string) response {
	t.Helper()
	return do(t, http.MethodGet, rawURL, hdr...)
}

func do(t *testing.T, method, rawURL string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("content-type"), "application/json") && len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &r.Msgs); err != nil {
			t.Fatalf("decode body %s: %v", body, err)
		}
	}
	return r
}

// shapeURL builds a /v1/shape URL from key/value pairs.
func (v *volt) shapeURL(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return v.URL + "/v1/shape?" + q.Encode()
}

// follower follows one shape as a client does and materialises its rows.
type follower struct {
	v        *volt
	params   []string
	handle   string
	offset   string
	cursor   string
	rows     map[string]map[string]*string
	upToDate bool
	// violations records inserts of present keys and updates or deletes of
	// absent ones: a doubled or a lost change.
	violations []string
}

func newFollower(v *volt, params ...string) *follower {
	return &follower{v: v, params: params, offset: "-1", rows: map[string]map[string]*string{}}
}

// poll makes one request (live once up to date) and applies the answer.
// It returns the response.
func (f *follower) poll(t *testing.T) response {
	t.Helper()
	kv := append([]string{}, f.params...)
	kv = append(kv, "offset", f.offset)
	if f.handle != "" {
		kv = append(kv, "handle", f.handle)
	}
	if f.upToDate {
		kv = append(kv, "live", "true", "cursor", f.cursor)
	}
	r := get(t, f.v.shapeURL(kv...))
	switch r.Status {
	case 200:
	case 409:
		f.handle, f.offset, f.upToDate = r.Header.Get("electric-handle"), "-1", false
		f.rows = map[string]map[string]*string{}
		f.violations = nil
		return r
	case 503:
		// The server is briefly unable to serve (its replication stream is
		// reconnecting): the official clients retry after Retry-After, and
		// so does the follower (the caller's deadline bounds the retries).
		wait, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || wait < 0 {
			t.Fatalf("GET %v: 503 without a usable Retry-After: %s", kv, r.Body)
		}
		time.Sleep(min(time.Duration(wait)*time.Second, 500*time.Millisecond))
		return r
	default:
		t.Fatalf("GET %v: %d %s", kv, r.Status, r.Body)
	}
	f.handle = r.Header.Get("electric-handle")
	f.offset = r.Header.Get("electric-offset")
	f.cursor = r.Header.Get("electric-cursor")
	for _, m := range r.Msgs {
		if m.control() == "up-to-date" {
			f.upToDate = true
		}
		f.apply(m)
	}
	return r
}

func (f *follower) apply(m message) {
	_, present := f.rows[m.Key]
	switch m.op() {
	case "insert":
		if present {
			f.violations = append(f.violations, "insert of present "+m.Key)
		}
		f.rows[m.Key] = maps.Clone(m.Value) // updates change the row in place
	case "update":
		row := f.rows[m.Key]
		if row == nil {
			f.violations = append(f.violations, "update of absent "+m.Key)
			row = map[string]*string{}
			f.rows[m.Key] = row
		}
		for k, v := range m.Value {
			row[k] = v
		}
	case "delete":
		if !present {
			f.violations = append(f.violations, "delete of absent "+m.Key)
		}
		delete(f.rows, m.Key)
	}
}

// catchUp polls until the follower is up to date (non-live requests only).
func (f *follower) catchUp(t *testing.T) {
	t.Helper()
	for i := 0; !f.upToDate; i++ {
		if i > 10000 {
			t.Fatal("follower never became up to date")
		}
		f.poll(t)
	}
}

// pollUntil polls live until cond holds on the rows.
func (f *follower) pollUntil(t *testing.T, what string, cond func(rows map[string]map[string]*string) bool) {
	t.Helper()
	f.catchUp(t)
	deadline := time.Now().Add(30 * time.Second)
	for !cond(f.rows) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; rows: %v", what, dump(f.rows))
		}
		f.poll(t)
	}
}

func dump(rows map[string]map[string]*string) string {
	var b strings.Builder
	for k, r := range rows {
		b.WriteString(k + "{")
		for c, v := range r {
			if v == nil {
				b.WriteString(c + ":NULL ")
			} else {
				b.WriteString(c + ":" + *v + " ")
			}
		}
		b.WriteString("} ")
		if b.Len() > 2000 {
			b.WriteString("…")
			break
		}
	}
	return b.String()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
