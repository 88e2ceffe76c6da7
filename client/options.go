package client

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/voltsync/volt"
)

// Defaults of the Client's retries (WithBackoff) and of LiveTimeout.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// DefaultLiveTimeout bounds one live long-poll request; the server
	// answers after 20 s at the latest, so only a lost connection hits it.
	DefaultLiveTimeout = 45 * time.Second
)

// shapeOptions describe a shape and how to follow it (Client.Shape
// builds them). Only URL is required.
type shapeOptions struct {
	// URL is the shape endpoint, e.g. "http://localhost:3000/v1/shape", or
	// a proxy in front of it. A URL without a path gets "/v1/shape". Query
	// parameters already in URL are kept (proxies use them).
	URL string
	// Table is the root table: "items", "schema.items" or a quoted name
	// such as `"My Schema"."my table"`. A proxy may set it instead.
	Table string
	// Where is an SQL condition; $1, $2, … refer to Params[0], Params[1], …
	Where  string
	Params []string
	// Columns restricts the shape to these columns (they must include the
	// primary key). Each is sent quoted, so it is case-sensitive.
	Columns []string
	// Replica is "default" (updates carry the key and changed columns) or
	// "full" (updates carry the whole row and old_value). Empty: default.
	Replica string
	// Log is "full" (the default) or "changes_only" (no initial rows).
	Log string
	// Secret is sent as the secret parameter (servers started with one).
	Secret string
	// Headers are added to every request.
	Headers http.Header
	// tokens gives the bearer token of each request (Client).
	tokens TokenSource
	// proxy is the ShapeURL option; proxyErr tells why it does not parse.
	proxy    string
	proxyErr error
	// HTTPClient makes the requests; nil means http.DefaultClient. Its
	// Timeout, if any, must exceed the server's long-poll timeout (20 s).
	HTTPClient *http.Client

	// LiveSSE follows live changes with Server-Sent Events instead of long
	// polling. After three SSE connections in a row that end within a
	// second, the stream falls back to long polling for good (a proxy that
	// buffers responses causes that).
	LiveSSE bool

	// Handle and Offset resume a stream saved from Stream.Handle and
	// Stream.Offset. With an empty Offset (or "-1") the stream starts from
	// the beginning; "now" skips the existing rows.
	Handle string
	Offset string

	// MinBackoff and MaxBackoff bound the delays between retries: the n-th
	// retry in a row waits a random time up to min(MaxBackoff,
	// MinBackoff·2ⁿ), and at least what Retry-After asks for.
	MinBackoff, MaxBackoff time.Duration
	// LiveTimeout bounds one live long-poll request (DefaultLiveTimeout).
	LiveTimeout time.Duration

	// OnError, if set, is called with every error the stream meets except
	// the context's and the callback's: each failed attempt (a network
	// error, an *Error for a 5xx or 429 answer, an empty answer), then
	// retried, and the error Run returns (an *Error for a 4xx answer, a
	// protocol violation). attempt counts the failures in a row, from 1;
	// retryIn is the wait before the next attempt, or NoRetry when Run
	// returns err. It runs on Run's goroutine before the wait, so it must
	// not block; to give up, cancel Run's context (Run then returns a
	// *RetryError wrapping the last attempt's error).
	OnError func(err error, attempt int, retryIn time.Duration)
}

// validate checks o and fills in defaults.
func (o *shapeOptions) validate() (*url.URL, error) {
	if o.proxyErr != nil {
		return nil, o.proxyErr
	}
	if o.URL == "" {
		return nil, errors.New("client: the shape URL is required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/shape"
	}
	switch o.Offset {
	case "", "-1", "now":
	default:
		if _, err := volt.ParseOffset(o.Offset); err != nil {
			return nil, errors.New("client: invalid Resume offset " + strconv.Quote(o.Offset))
		}
		if o.Handle == "" {
			return nil, errors.New("client: Resume needs a handle with an offset")
		}
	}
	if o.Offset == "" {
		o.Offset = "-1"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.LiveTimeout <= 0 {
		o.LiveTimeout = DefaultLiveTimeout
	}
	return u, nil
}

// shapeQuery adds the shape definition parameters to q.
func (o *shapeOptions) shapeQuery(q url.Values) {
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set(volt.ParamTable, o.Table)
	set(volt.ParamWhere, o.Where)
	for i, p := range o.Params {
		q.Set(volt.ParamParams+"["+strconv.Itoa(i+1)+"]", p)
	}
	if len(o.Columns) > 0 {
		quoted := make([]string, len(o.Columns))
		for i, c := range o.Columns {
			quoted[i] = quoteIdent(c)
		}
		q.Set(volt.ParamColumns, strings.Join(quoted, ","))
	}
	set(volt.ParamReplica, o.Replica)
	set(volt.ParamLog, o.Log)
	set(volt.ParamSecret, o.Secret)
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
