package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client holds what every request to one volt (or Electric) server needs:
// the base URL, the HTTP client, the credentials and how to retry. Create
// it once with New and make shapes, streams and writers from it; it is
// safe for concurrent use and holds no connection of its own (the HTTP
// client does).
type Client struct {
	base       *url.URL
	httpClient *http.Client
	tokens     TokenSource
	headers    http.Header
	secret     string
	onError    func(err error, attempt int, retryIn time.Duration)
	logger     *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
}

// Option configures a Client (New).
type Option func(*Client)

// WithHTTPClient makes the requests with hc instead of
// http.DefaultClient. Its Timeout, if any, must exceed the server's
// long-poll timeout (20 s).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithTokenSource sends "Authorization: Bearer <token>" with every
// request, the token taken from ts (see TokenSource for the refresh after
// a 401).
func WithTokenSource(ts TokenSource) Option { return func(c *Client) { c.tokens = ts } }

// WithToken sends a fixed bearer token: WithTokenSource(StaticToken(tok)).
func WithToken(tok string) Option { return WithTokenSource(StaticToken(tok)) }

// WithHeader adds a header to every request.
func WithHeader(key, value string) Option {
	return func(c *Client) { c.headers.Add(key, value) }
}

// WithSecret sends the secret parameter with every request (a server
// started with -secret).
func WithSecret(secret string) Option { return func(c *Client) { c.secret = secret } }

// WithOnError calls fn with every error a stream or writer of the Client
// meets while retrying (a network error, an *Error for a 5xx or 429
// answer, a "retry" result) and with the error that ends a call. attempt
// counts the failures in a row, from 1; retryIn is the wait before the
// next attempt, or NoRetry when the call returns err. fn runs on the
// goroutine that made the request, so it must not block; to give up,
// cancel the call's context (it then returns a *RetryError wrapping the
// last failure).
func WithOnError(fn func(err error, attempt int, retryIn time.Duration)) Option {
	return func(c *Client) { c.onError = fn }
}

// WithLogger logs every retry and every error that ends a call at level
// Warn. The package logs nothing without it.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.logger = l } }

// WithBackoff bounds the waits between retries: the n-th retry in a row
// waits a random time up to min(max, min·2ⁿ), and at least what
// Retry-After asks for. Defaults: DefaultMinBackoff, DefaultMaxBackoff.
func WithBackoff(min, max time.Duration) Option {
	return func(c *Client) { c.minBackoff, c.maxBackoff = min, max }
}

// New returns a Client of the server at rawURL, its base URL
// ("http://localhost:3000"): shapes are read from <base>/v1/shape and
// writes sent to <base>/v1/mutations, a path in rawURL being a prefix
// ("https://example.com/sync" reads https://example.com/sync/v1/shape).
// A proxy that serves shapes at another path is given per shape
// (ShapeURL). Query parameters in rawURL are kept on every request
// (proxies use them).
func New(rawURL string, opts ...Option) (*Client, error) {
	if rawURL == "" {
		return nil, errors.New("client: New needs the server's URL")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: server URL %q: want http:// or https://", rawURL)
	}
	c := &Client{base: u, headers: http.Header{}}
	for _, o := range opts {
		o(c)
	}
	if c.httpClient == nil {
		c.httpClient = http.DefaultClient
	}
	if c.minBackoff <= 0 {
		c.minBackoff = DefaultMinBackoff
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxBackoff
	}
	return c, nil
}

// URL returns the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// observer is the OnError function of c's streams and writers: OnError
// and the logger, if set; nil if neither is.
func (c *Client) observer() func(error, int, time.Duration) {
	if c.onError == nil && c.logger == nil {
		return nil
	}
	return func(err error, attempt int, retryIn time.Duration) {
		if c.logger != nil {
			if retryIn == NoRetry {
				c.logger.Warn("volt client: request failed", "err", err, "attempt", attempt)
			} else {
				c.logger.Warn("volt client: retrying", "err", err, "attempt", attempt, "retry_in", retryIn)
			}
		}
		if c.onError != nil {
			c.onError(err, attempt, retryIn)
		}
	}
}

// endpoint returns the URL of path on c's server: path after c's base
// URL's path.
func (c *Client) endpoint(path string) *url.URL {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	return &u
}

// shapeOptions returns the options of a shape of def on c.
func (c *Client) shapeOptions(def ShapeDef, opts []ShapeOption) shapeOptions {
	o := shapeOptions{
		URL: c.endpoint("/v1/shape").String(), Table: def.Table, Where: def.Where,
		Params: def.Params, Columns: def.Columns, Replica: def.Replica, Log: def.Log,
		Secret: c.secret, Headers: c.headers, HTTPClient: c.httpClient, tokens: c.tokens,
		MinBackoff: c.minBackoff, MaxBackoff: c.maxBackoff, OnError: c.observer(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.proxy != "" {
		ref, err := url.Parse(o.proxy)
		if err != nil {
			o.URL = "" // newStream reports it
			o.proxyErr = fmt.Errorf("client: ShapeURL %q: %w", o.proxy, err)
		} else {
			o.URL = c.base.ResolveReference(ref).String()
		}
	}
	return o
}

// Stream returns a Stream of the shape def: the low-level form that
// delivers the shape's messages batch by batch (Stream.Run); Shape and
// ShapeOf keep the rows for you.
func (c *Client) Stream(def ShapeDef, opts ...ShapeOption) (*Stream, error) {
	return newStream(c.shapeOptions(def, opts))
}

// Shape returns a Shape of def, which keeps the shape's rows in memory as
// maps (Row); ShapeOf decodes them into structs. It syncs nothing until
// Shape.Run.
func (c *Client) Shape(def ShapeDef, opts ...ShapeOption) (*Shape, error) {
	return newShape(c.shapeOptions(def, opts))
}

// ReceiptShape returns a Shape of the receipts of clientID's transactions
// (table volt.receipts), for Writer.WriteAndAwait, Optimistic and
// Shape.AwaitReceipt.
func (c *Client) ReceiptShape(clientID string, opts ...ShapeOption) (*Shape, error) {
	return c.Shape(ShapeDef{Table: ReceiptsTable, Where: "client_id = $1", Params: []string{clientID}}, opts...)
}

// Writer returns a Writer that sends clientID's transactions to the
// server's write endpoint (POST /v1/mutations).
func (c *Client) Writer(clientID string, opts ...WriterOption) (*Writer, error) {
	o := writerOptions{
		URL: c.endpoint("/v1/mutations").String(), ClientID: clientID,
		HTTPClient: c.httpClient, Headers: c.headers, Secret: c.secret, TokenSource: c.tokens,
		MinBackoff: c.minBackoff, MaxBackoff: c.maxBackoff, OnError: c.observer(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	return newWriter(o)
}

// ShapeDef defines a shape: a table and, optionally, which of its rows
// and columns.
type ShapeDef struct {
	// Table is the root table: "items", "schema.items" or a quoted name
	// such as `"My Schema"."my table"`. A proxy may set it instead.
	Table string
	// Where is an SQL condition; $1, $2, … refer to Params[0], Params[1],
	// … It may use subqueries (x IN (SELECT …)) on servers that allow
	// them; rows then move in and out of the shape (see Move).
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
}

// ShapeOption configures one shape or stream (Client.Shape, ShapeOf,
// Client.Stream).
type ShapeOption func(*shapeOptions)

// Resume starts the shape at a position saved from Stream.Handle and
// Stream.Offset (or ShapeChange.Handle and Offset) instead of the
// beginning. offset "-1" is the beginning, "now" skips the existing rows.
func Resume(handle, offset string) ShapeOption {
	return func(o *shapeOptions) { o.Handle, o.Offset = handle, offset }
}

// ShapeURL reads the shape from rawURL instead of <base>/v1/shape: a
// proxy in front of the shape API, which may set the table and where
// clause itself. A relative URL ("/api/todos") is resolved against the
// Client's base URL; query parameters in it are kept.
func ShapeURL(rawURL string) ShapeOption {
	return func(o *shapeOptions) { o.proxy = rawURL }
}

// LiveSSE follows live changes with Server-Sent Events instead of long
// polling. After three SSE connections in a row that end within a second,
// the stream falls back to long polling for good (a proxy that buffers
// responses causes that).
func LiveSSE() ShapeOption { return func(o *shapeOptions) { o.LiveSSE = true } }

// LiveTimeout bounds one live long-poll request (DefaultLiveTimeout).
func LiveTimeout(d time.Duration) ShapeOption {
	return func(o *shapeOptions) { o.LiveTimeout = d }
}

// WriterOption configures a Writer (Client.Writer).
type WriterOption func(*writerOptions)

// WithSeqStore hands out the Writer's sequence numbers from s. Without
// it, a NewMemorySeqStore(1), which is only right for a ClientID used for
// the first time, or one that is never reused after the process ends.
func WithSeqStore(s SeqStore) WriterOption { return func(o *writerOptions) { o.Seqs = s } }

// WithMaxBatch bounds the transactions sent in one request
// (DefaultMaxBatch).
func WithMaxBatch(n int) WriterOption { return func(o *writerOptions) { o.MaxBatch = n } }

// WithSentBefore tells the Writer which seqs an earlier Writer or process
// may have sent already (a store that resends its queue after a crash):
// the server's replayed answer for such a seq is the transaction's own
// result from that earlier delivery and is returned as its result, where
// it would otherwise be ErrSeqReused.
func WithSentBefore(f func(seq int64) bool) WriterOption {
	return func(o *writerOptions) { o.SentBefore = f }
}

// NoLSNWait stops asking the server to wait for each accepted
// transaction's exact commit LSN ("wait": "lsn"): answers come sooner,
// with an upper bound of the commit LSN, which a quiet server may not
// pass until another transaction commits. WriteAndAwait and Optimistic
// use the LSN for shapes the write does not touch: with NoLSNWait, give
// them a receipts shape (Client.ReceiptShape), whose changes carry the
// exact commit LSN.
func NoLSNWait() WriterOption { return func(o *writerOptions) { o.NoLSNWait = true } }
