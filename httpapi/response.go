package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/voltsync/volt"
)

const exposedHeaders = volt.HeaderCursor + "," + volt.HeaderHandle + "," + volt.HeaderHasData + "," + volt.HeaderOffset + "," +
	volt.HeaderSchema + "," + volt.HeaderUpToDate + "," + volt.HeaderKnownError + ",retry-after"

// cursorEpoch is the origin of electric-cursor values (2024-10-09T00:00:00Z).
var cursorEpoch = time.Date(2024, 10, 9, 0, 0, 0, 0, time.UTC)

// nextCursor computes electric-cursor: the end of the current long-poll
// interval, and never a value the client already sent.
func nextCursor(now time.Time, interval time.Duration, sent string) string {
	secs := int64(interval / time.Second)
	if secs <= 0 {
		return "0"
	}
	elapsed := int64(now.Sub(cursorEpoch) / time.Second)
	next := (elapsed + secs - 1) / secs * secs
	if prev, err := strconv.ParseInt(sent, 10, 64); err == nil && next <= prev {
		next = prev + 1 + rand.Int64N(3600)
	}
	return strconv.FormatInt(next, 10)
}

func setCORS(w http.ResponseWriter, r *http.Request, methods string) {
	h := w.Header()
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = "*"
	}
	h.Set("access-control-allow-origin", origin)
	h.Set("access-control-allow-methods", methods)
	h.Set("access-control-expose-headers", exposedHeaders)
	if origin != "*" {
		h.Add("vary", "Origin")
	}
}

// writeJSON writes a JSON response.
func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"Internal server error"}`)
	}
	w.Header().Set("content-type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes a 4xx/5xx with Electric's no-store cache headers.
func writeError(w http.ResponseWriter, r *http.Request, status int, body any) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		w.Header().Set("cache-control", "no-store")
		w.Header().Set("surrogate-control", "no-store")
	} else {
		w.Header().Set("cache-control", "no-cache")
	}
	writeJSON(w, status, body)
}

func writeInvalid(w http.ResponseWriter, r *http.Request, errs fieldErrors) {
	writeError(w, r, http.StatusBadRequest, map[string]any{"message": "Invalid request", "errors": errs})
}

func writeUnavailable(w http.ResponseWriter, r *http.Request, retryAfter int, body any) {
	w.Header().Set("retry-after", strconv.Itoa(retryAfter))
	writeError(w, r, http.StatusServiceUnavailable, body)
}

// etagMatches reports whether If-None-Match lists etag.
func etagMatches(r *http.Request, etag string) bool {
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	want := strings.Trim(etag, `"`)
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if strings.Trim(t, `"`) == want {
			return true
		}
	}
	return false
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
