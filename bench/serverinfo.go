package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// What the bench can learn about volt serve besides its responses: the
// shapes on disk (one directory per handle under <storage>/shapes, see
// shapelog's layout), a GET /v1/stats endpoint when the server has one, and
// whether `volt serve` accepts a flag.

// shapesDir is where volt serve keeps one directory per shape.
func (e *Env) shapesDir() string { return filepath.Join(e.storageDir(), "shapes") }

// shapeDirs counts the shape directories on disk; ok is false when the
// layout is not the one expected.
func (e *Env) shapeDirs() (n int, ok bool) {
	ents, err := os.ReadDir(e.shapesDir())
	if err != nil {
		return 0, false
	}
	for _, d := range ents {
		if d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
	}
	return n, true
}

// shapeDiskBytes is the size of one shape's directory; ok is false when it
// does not exist.
func (e *Env) shapeDiskBytes(handle string) (int64, bool) {
	dir := filepath.Join(e.shapesDir(), handle)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return 0, false
	}
	return dirSize(dir), true
}

// serverStats fetches GET /v1/stats; ok is false when the server has no
// such endpoint (or it does not answer a JSON object).
func (e *Env) serverStats(ctx context.Context, query ...string) (map[string]any, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := e.URL + "/v1/stats"
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var m map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
		return nil, false
	}
	return m, true
}

// statsShapeCount is the first top-level number in stats whose key names
// shapes (e.g. "shapes", "shape_count"); ok is false when there is none.
func statsShapeCount(stats map[string]any) (key string, n float64, ok bool) {
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v, isNum := stats[k].(float64); isNum && strings.Contains(strings.ToLower(k), "shape") {
			return k, v, true
		}
	}
	return "", 0, false
}

// statsShapeBytes looks in stats for an object that names handle (as any
// string value) and returns its first number whose key mentions disk or
// bytes.
func statsShapeBytes(stats any, handle string) (float64, bool) {
	switch v := stats.(type) {
	case map[string]any:
		names := false
		for k, x := range v {
			if s, ok := x.(string); ok && s == handle {
				names = true
			}
			if k == handle { // {"<handle>": {...}}
				if b, ok := bytesField(x); ok {
					return b, true
				}
			}
		}
		if names {
			if b, ok := bytesField(v); ok {
				return b, true
			}
		}
		for _, x := range v {
			if b, ok := statsShapeBytes(x, handle); ok {
				return b, true
			}
		}
	case []any:
		for _, x := range v {
			if b, ok := statsShapeBytes(x, handle); ok {
				return b, true
			}
		}
	}
	return 0, false
}

func bytesField(x any) (float64, bool) {
	m, ok := x.(map[string]any)
	if !ok {
		return 0, false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		l := strings.ToLower(k)
		if n, isNum := m[k].(float64); isNum && (strings.Contains(l, "disk") || strings.Contains(l, "bytes")) {
			return n, true
		}
	}
	return 0, false
}

// serverHasFlag reports whether `volt serve -h` lists flag (without the dash).
func (e *Env) serverHasFlag(flag string) bool {
	args := append(append([]string{}, e.cfg.ServerCmd[1:]...), "-h")
	out, _ := exec.Command(e.cfg.ServerCmd[0], args...).CombinedOutput() // -h exits non-zero
	return strings.Contains(string(out), "-"+flag+" ") || strings.Contains(string(out), "-"+flag+"\n")
}

// revive starts a fresh volt serve when the current one has exited, so a
// scenario can report the crash as a FAILED row instead of ending the run;
// it returns why the old one ended ("" when it is still running).
func (e *Env) revive(ctx context.Context) (string, error) {
	select {
	case <-e.exited:
	default:
		return "", nil
	}
	state := "exited"
	if e.server != nil && e.server.ProcessState != nil {
		state = "exited: " + e.server.ProcessState.String()
	}
	tail := strings.TrimSpace(e.logTail())
	if i := strings.LastIndex(tail, "\n"); i >= 0 {
		tail = tail[i+1:]
	}
	if tail != "" {
		state += "; log: " + tail
	}
	e.progress("volt serve %s; starting a fresh one", state)
	e.server = nil
	return "volt serve " + state, e.RestartServer(ctx)
}
