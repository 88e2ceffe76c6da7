package httpapi

import (
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestNextCursor(t *testing.T) {
	now := cursorEpoch.Add(95 * time.Second)
	if got := nextCursor(now, 20*time.Second, ""); got != "100" {
		t.Fatalf("cursor = %s, want 100 (end of the current 20s interval)", got)
	}
	// A client that already sent this interval's cursor gets a larger one.
	for i := 0; i < 100; i++ {
		got, _ := strconv.Atoi(nextCursor(now, 20*time.Second, "100"))
		if got <= 100 || got > 100+3600 {
			t.Fatalf("cursor after 100 = %d", got)
		}
	}
	if got := nextCursor(now, 0, ""); got != "0" {
		t.Fatalf("zero interval: %s", got)
	}
}

func TestParseParams(t *testing.T) {
	q, _ := url.ParseQuery("params[1]=a&params[2]=b%20c")
	p, msg := parseParams(q)
	if msg != "" || !reflect.DeepEqual(p, map[string]string{"1": "a", "2": "b c"}) {
		t.Fatalf("got %v %q", p, msg)
	}
	for raw, want := range map[string]string{
		"params[x]=1":             "Parameters can only use numbers as keys",
		"params[01]=1":            "Parameters can only use numbers as keys",
		"params[2]=1":             "Parameters must be numbered sequentially, starting from 1",
		"params[1]=1&params[3]=1": "Parameters must be numbered sequentially, starting from 1",
		"params=%7B%7D":           "is invalid",
	} {
		q, _ := url.ParseQuery(raw)
		if _, msg := parseParams(q); msg != want {
			t.Errorf("%s: %q, want %q", raw, msg, want)
		}
	}
}

func TestParseRequestLiveIsTrueUnlessFalse(t *testing.T) {
	for raw, want := range map[string]bool{"live": true, "live=": true, "live=true": true, "live=0": true, "live=false": false, "": false} {
		q, _ := url.ParseQuery("table=t&offset=1_0&handle=h&" + raw)
		req, errs := parseRequest(q)
		if len(errs) != 0 || req.live != want {
			t.Errorf("%q: live=%v errs=%v", raw, req.live, errs)
		}
	}
}

func TestETagMatches(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("If-None-Match", `"other", W/"h:-1:0_0"`)
	if !etagMatches(r, `"h:-1:0_0"`) || etagMatches(r, `"h:-1:0_1"`) {
		t.Fatal("If-None-Match list not matched correctly")
	}
}
