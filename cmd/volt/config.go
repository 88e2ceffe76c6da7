package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/shapecache"
)

// Config is volt serve's configuration, from flags and environment.
type Config struct {
	DatabaseURL        string
	Port               int
	ListenHost         string
	StorageDir         string
	Secret             string
	LongPollTimeout    time.Duration
	SSETimeout         time.Duration
	ChunkBytes         int
	CacheMaxAge        int
	CacheStaleAge      int
	StreamID           string
	AllowShapeDeletion bool
	LogLevel           string
	SchemaCheck        time.Duration
	DBPoolSize         int
	StartupGrace       time.Duration // how long an unreachable Postgres is retried at start
	InsecureWrites     bool
	// The write endpoint's own pool and request caps (mutations.Options).
	WritePoolSize        int
	MaxWriteTransactions int
	MaxWriteMutations    int
	WriteLSNWait         time.Duration
	// Insecure lets volt serve shapes to anyone on a non-loopback address
	// without a secret or read rules (listenHost).
	Insecure bool
	// AuthorizedCachePublic keeps "public" cache-control on responses to
	// bearer requests (for a proxy that keys its cache per Authorization).
	AuthorizedCachePublic bool
	ShapeTokenTTL         time.Duration
	// Back-pressure (httpapi.Config).
	MaxShapes             int
	MaxConcurrentInitial  int
	MaxConcurrentExisting int
	StallTimeout          time.Duration
	MaxShapesPerPrincipal int
	// Connections and browsers (httpapi.Config).
	IdleTimeout   time.Duration
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	MaxConnsPerIP int
	CORSOrigins   string // comma-separated; "" for the default
	// Shape storage and upkeep (shapecache.Cache).
	SnapshotConcurrency int // 0: half the pool
	MaxQueuedSnapshots  int
	MaxOpenLogs         int
	ShapeTTL            time.Duration
	CompactMinOps       int
	CompactGrace        time.Duration
	// MetricsPort serves Prometheus metrics at /metrics on a listener of
	// its own, on the same host as the API (0: off).
	MetricsPort int

	// Authorisation of POST /v1/mutations (docs/AUTH.md).
	AuthJWTSecret    string // HS256 secret
	AuthJWTPublicKey string // PEM file path (or PEM text) of RS256/ES256 public keys
	AuthIssuer       string
	AuthAudience     string
	Rules            string // rules file path
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Port:            3000,
		StorageDir:      "./volt-data",
		LongPollTimeout: httpapi.DefaultLongPollTimeout,
		SSETimeout:      httpapi.DefaultSSETimeout,
		ChunkBytes:      10 << 20,
		CacheMaxAge:     httpapi.DefaultCacheMaxAge,
		CacheStaleAge:   httpapi.DefaultCacheStaleAge,
		StreamID:        "default",
		LogLevel:        "info",
		SchemaCheck:     10 * time.Second,
		DBPoolSize:      20,
		StartupGrace:    30 * time.Second,
		ShapeTokenTTL:   10 * time.Minute,

		WritePoolSize:        5,
		MaxWriteTransactions: mutations.DefaultMaxTransactions,
		MaxWriteMutations:    mutations.DefaultMaxMutations,
		WriteLSNWait:         mutations.DefaultLSNWait,

		MaxConcurrentInitial:  httpapi.DefaultMaxConcurrentInitial,
		MaxConcurrentExisting: httpapi.DefaultMaxConcurrentExisting,
		StallTimeout:          httpapi.DefaultStallTimeout,
		MaxShapes:             100_000,
		MaxShapesPerPrincipal: 1_000,
		IdleTimeout:           httpapi.DefaultIdleTimeout,
		HeaderTimeout:         httpapi.DefaultHeaderTimeout,
		BodyTimeout:           httpapi.DefaultBodyTimeout,
		MaxConnsPerIP:         256,

		MaxQueuedSnapshots: shapecache.DefaultMaxQueuedSnapshots,
		MaxOpenLogs:        shapecache.DefaultMaxOpenLogs,
		CompactMinOps:      shapecache.DefaultCompactMinOps,
		CompactGrace:       shapecache.DefaultCompactGrace,
	}
}

// setting is one configuration value: its flag, its environment names
// (volt's first, then Electric's aliases) and how to parse it.
type setting struct {
	flag  string
	env   []string
	usage string
	val   flag.Value
}

func (c *Config) settings() []setting {
	return []setting{
		{"database-url", []string{"DATABASE_URL"}, "Postgres URL (wal_level=logical); empty starts an embedded Postgres", str(&c.DatabaseURL)},
		{"port", []string{"VOLT_PORT", "ELECTRIC_PORT", "PORT"}, "HTTP port", integer(&c.Port)},
		{"host", []string{"VOLT_HOST"}, "address to listen on (empty: all interfaces when -secret or -rules protect reads, else 127.0.0.1)", str(&c.ListenHost)},
		{"insecure", []string{"VOLT_INSECURE", "ELECTRIC_INSECURE"}, "serve every shape to anyone who can connect, on any address, without -secret or -rules (a warning is logged)", boolean(&c.Insecure)},
		{"storage-dir", []string{"VOLT_STORAGE_DIR", "ELECTRIC_STORAGE_DIR"}, "directory for shape logs (and the embedded Postgres)", str(&c.StorageDir)},
		{"secret", []string{"VOLT_SECRET", "ELECTRIC_SECRET"}, "shared secret required as ?secret= on shape requests", str(&c.Secret)},
		{"long-poll-timeout", []string{"VOLT_LONG_POLL_TIMEOUT", "ELECTRIC_LONG_POLL_TIMEOUT"}, "how long a live request is held (duration, or milliseconds)", duration(&c.LongPollTimeout)},
		{"sse-timeout", []string{"VOLT_SSE_TIMEOUT", "ELECTRIC_SSE_TIMEOUT"}, "how long an SSE stream stays open (duration, or milliseconds)", duration(&c.SSETimeout)},
		{"chunk-bytes", []string{"VOLT_CHUNK_BYTES", "ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD"}, "shape log chunk size threshold in bytes", integer(&c.ChunkBytes)},
		{"cache-max-age", []string{"VOLT_CACHE_MAX_AGE", "ELECTRIC_CACHE_MAX_AGE"}, "max-age (seconds) of non-live responses", integer(&c.CacheMaxAge)},
		{"cache-stale-age", []string{"VOLT_CACHE_STALE_AGE", "ELECTRIC_CACHE_STALE_AGE"}, "stale-while-revalidate (seconds) of non-live responses", integer(&c.CacheStaleAge)},
		{"replication-stream-id", []string{"VOLT_REPLICATION_STREAM_ID", "ELECTRIC_REPLICATION_STREAM_ID"}, "suffix of the publication and slot names", str(&c.StreamID)},
		{"allow-shape-deletion", []string{"VOLT_ALLOW_SHAPE_DELETION", "ELECTRIC_ENABLE_INTEGRATION_TESTING"}, "enable DELETE /v1/shape", boolean(&c.AllowShapeDeletion)},
		{"log-level", []string{"VOLT_LOG_LEVEL", "ELECTRIC_LOG_LEVEL"}, "debug, info, warn or error", str(&c.LogLevel)},
		{"insecure-writes", []string{"VOLT_INSECURE_WRITES"}, "without -rules, let POST /v1/mutations write every table in schema public (development only)", boolean(&c.InsecureWrites)},
		{"startup-grace", []string{"VOLT_STARTUP_GRACE"}, "how long volt serve retries a Postgres it cannot reach (refused, unknown host, starting up) before it exits; wrong credentials and failed start-up checks exit at once (duration, or milliseconds)", duration(&c.StartupGrace)},
		{"db-pool-size", []string{"VOLT_DB_POOL_SIZE", "ELECTRIC_DB_POOL_SIZE"}, "connections for snapshots and catalog reads (writes have -write-pool-size of their own)", integer(&c.DBPoolSize)},
		{"write-pool-size", []string{"VOLT_WRITE_POOL_SIZE"}, "connections for POST /v1/mutations, separate from -db-pool-size; each client transaction holds one while it runs", integer(&c.WritePoolSize)},
		{"max-write-transactions", []string{"VOLT_MAX_WRITE_TRANSACTIONS"}, "transactions in one POST /v1/mutations request before 413", integer(&c.MaxWriteTransactions)},
		{"max-write-mutations", []string{"VOLT_MAX_WRITE_MUTATIONS"}, "mutations (of all transactions) in one POST /v1/mutations request before 413", integer(&c.MaxWriteMutations)},
		{"write-lsn-wait", []string{"VOLT_WRITE_LSN_WAIT"}, "how long a write's answer waits for replication to report its exact commit LSN before it carries an upper bound (duration, or milliseconds)", duration(&c.WriteLSNWait)},
		{"schema-check-interval", []string{"VOLT_SCHEMA_CHECK_INTERVAL"}, "how often synced tables are checked for DDL", duration(&c.SchemaCheck)},
		{"auth-jwt-secret", []string{"VOLT_AUTH_JWT_SECRET"}, "HS256 secret (32 bytes or more) for Authorization: Bearer tokens on POST /v1/mutations", str(&c.AuthJWTSecret)},
		{"auth-jwt-public-key", []string{"VOLT_AUTH_JWT_PUBLIC_KEY"}, "PEM file of RS256/ES256 public keys for bearer tokens on POST /v1/mutations", str(&c.AuthJWTPublicKey)},
		{"auth-issuer", []string{"VOLT_AUTH_ISSUER"}, "required iss of bearer tokens", str(&c.AuthIssuer)},
		{"auth-audience", []string{"VOLT_AUTH_AUDIENCE"}, "required aud of bearer tokens", str(&c.AuthAudience)},
		{"rules", []string{"VOLT_RULES"}, "rules file (JSON, docs/AUTH.md): who may write and read which tables; with it, tables without a read rule are readable only with -secret", str(&c.Rules)},
		{"authorized-cache-public", []string{"VOLT_AUTHORIZED_CACHE_PUBLIC"}, "answer bearer-token shape requests with public cache-control plus Vary: Authorization instead of private (only behind a cache keyed by the Authorization header)", boolean(&c.AuthorizedCachePublic)},
		{"shape-token-ttl", []string{"VOLT_SHAPE_TOKEN_TTL"}, "lifetime of tokens from POST /v1/shape-token (duration, or milliseconds)", duration(&c.ShapeTokenTTL)},
		{"max-shapes", []string{"VOLT_MAX_SHAPES"}, "refuse (503) requests that would create a shape beyond this many; 0 for no limit", integer(&c.MaxShapes)},
		{"max-concurrent-initial", []string{"VOLT_MAX_CONCURRENT_INITIAL"}, "concurrent shape requests without a known handle (or at offset=-1) before 503", integer(&c.MaxConcurrentInitial)},
		{"max-concurrent-existing", []string{"VOLT_MAX_CONCURRENT_EXISTING"}, "concurrent other shape requests, parked live ones included, before 503", integer(&c.MaxConcurrentExisting)},
		{"stall-timeout", []string{"VOLT_STALL_TIMEOUT"}, "drop a client that reads nothing of its response for this long (duration, or milliseconds)", duration(&c.StallTimeout)},
		{"max-shapes-per-principal", []string{"VOLT_MAX_SHAPES_PER_PRINCIPAL"}, "refuse (429) requests that would create a shape while this many shapes their caller created still exist; the caller is the token's sub with -rules and a JWT key, otherwise the client address; requests with the API secret are not counted; 0 for no limit", integer(&c.MaxShapesPerPrincipal)},
		{"max-conns-per-ip", []string{"VOLT_MAX_CONNS_PER_IP"}, "open connections from one client address; a request on a connection past it gets 429 and the connection is closed, and past twice it new connections are closed at once (behind a proxy, clients share its address: raise this above the proxy's connections to volt); 0 for no limit", integer(&c.MaxConnsPerIP)},
		{"idle-timeout", []string{"VOLT_IDLE_TIMEOUT"}, "close a kept-alive connection that waits this long for its next request (duration, or milliseconds)", duration(&c.IdleTimeout)},
		{"header-timeout", []string{"VOLT_HEADER_TIMEOUT"}, "time a client has to send a request's headers (duration, or milliseconds)", duration(&c.HeaderTimeout)},
		{"body-timeout", []string{"VOLT_BODY_TIMEOUT"}, "time a client has to send a request's body after its headers; requests without a body (long-polls, SSE) are not affected (duration, or milliseconds)", duration(&c.BodyTimeout)},
		{"cors-origins", []string{"VOLT_CORS_ORIGINS"}, "comma-separated origins whose pages may read responses (exact, such as https://app.example.com, or *); default: any origin with -secret or -rules, otherwise only pages on localhost, 127.0.0.1 or [::1]", str(&c.CORSOrigins)},
		{"snapshot-concurrency", []string{"VOLT_SNAPSHOT_CONCURRENCY"}, "initial snapshots running at once, each on a pool connection (0: half of -db-pool-size)", integer(&c.SnapshotConcurrency)},
		{"max-queued-snapshots", []string{"VOLT_MAX_QUEUED_SNAPSHOTS"}, "snapshots waiting for a slot before requests for new shapes get 503", integer(&c.MaxQueuedSnapshots)},
		{"max-open-logs", []string{"VOLT_MAX_OPEN_LOGS"}, "shape logs kept open at once (2 files each, 4 while a snapshot is read); idle ones are closed", integer(&c.MaxOpenLogs)},
		{"shape-ttl", []string{"VOLT_SHAPE_TTL"}, "remove shapes no client has read for this long, with their files (0: keep them)", duration(&c.ShapeTTL)},
		{"compact-min-ops", []string{"VOLT_COMPACT_MIN_OPS"}, "compact a shape log once it holds this many messages and more than twice its rows (-1: never)", integer(&c.CompactMinOps)},
		{"metrics-port", []string{"VOLT_METRICS_PORT", "ELECTRIC_PROMETHEUS_PORT"}, "serve Prometheus metrics at /metrics on this port, on the same host as the API (0: off; docs/OPERATIONS.md)", integer(&c.MetricsPort)},
		{"compact-grace", []string{"VOLT_COMPACT_GRACE"}, "how long a compacted shape's old log keeps serving its clients before they get 409", duration(&c.CompactGrace)},
	}
}

// LoadConfig reads the environment, then the flags (which win), and
// validates the result. Every problem is reported, one sentence each.
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	return loadConfig(args, getenv, os.Stderr)
}

// loadConfig is LoadConfig writing -h's text and flag errors to out.
func loadConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("volt serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		d := DefaultConfig()
		fmt.Fprint(out, serveUsage)
		printSettings(out, d.settings())
	}
	problems := bindSettings(fs, c.settings(), getenv)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	problems = append(problems, c.validate()...)
	if len(problems) > 0 {
		return c, errors.New(strings.Join(problems, "\n"))
	}
	return c, nil
}

const serveUsage = `Usage: volt serve [flags]

Runs the Electric-compatible sync service. Every flag can also be set by
its environment variables (the first one set wins); a flag wins over the
environment.

Flags:
`

// bindSettings applies each setting's first non-empty environment variable
// and registers its flag on fs. It returns one sentence per invalid value.
func bindSettings(fs *flag.FlagSet, settings []setting, getenv func(string) string) []string {
	var problems []string
	for _, s := range settings {
		for _, name := range s.env {
			if v := getenv(name); v != "" {
				if err := s.val.Set(v); err != nil {
					problems = append(problems, fmt.Sprintf("%s=%q is not valid: %v.", name, v, err))
				}
				break
			}
		}
		fs.Var(s.val, s.flag, s.usage)
	}
	return problems
}

// printSettings lists settings for -h: flag, usage, default and
// environment variables.
func printSettings(w io.Writer, settings []setting) {
	for _, s := range settings {
		def := s.val.String()
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  -%s\n\t%s\n\tdefault: %s; env: %s\n", s.flag, s.usage, def, strings.Join(s.env, ", "))
	}
}

// printFlags lists fs's flags for -h like printSettings, with every
// default (flag.PrintDefaults leaves out false and empty ones).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  -%s\n\t%s\n\tdefault: %s\n", f.Name, f.Usage, def)
	})
}

func (c *Config) validate() []string {
	var p []string
	if c.Port < 1 || c.Port > 65535 {
		p = append(p, fmt.Sprintf("The port must be between 1 and 65535, not %d.", c.Port))
	}
	if c.MetricsPort < 0 || c.MetricsPort > 65535 || (c.MetricsPort != 0 && c.MetricsPort == c.Port) {
		p = append(p, fmt.Sprintf("The metrics port must be 0 (off) or between 1 and 65535 and differ from the HTTP port, not %d.", c.MetricsPort))
	}
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			p = append(p, "DATABASE_URL must be a postgres:// or postgresql:// URL.")
		}
	}
	if c.StorageDir == "" {
		p = append(p, "The storage directory must not be empty.")
	}
	if c.LongPollTimeout <= 0 || c.LongPollTimeout >= 45*time.Second {
		p = append(p, fmt.Sprintf("The long-poll timeout must be above 0 and below 45s (clients give up at 45s), not %s.", c.LongPollTimeout))
	}
	if c.SSETimeout <= 0 {
		p = append(p, "The SSE timeout must be above 0.")
	}
	if c.ChunkBytes < 1024 {
		p = append(p, fmt.Sprintf("The chunk size must be at least 1024 bytes, not %d.", c.ChunkBytes))
	}
	if c.DBPoolSize < 2 {
		p = append(p, fmt.Sprintf("The database pool needs at least 2 connections, not %d.", c.DBPoolSize))
	}
	if c.WritePoolSize < 1 || c.MaxWriteTransactions < 1 || c.MaxWriteMutations < 1 {
		p = append(p, fmt.Sprintf("The write pool size and the write request limits must be at least 1, not %d, %d and %d.", c.WritePoolSize, c.MaxWriteTransactions, c.MaxWriteMutations))
	}
	if c.WriteLSNWait <= 0 {
		p = append(p, "The write LSN wait must be above 0.")
	}
	if c.CacheMaxAge < 0 || c.CacheStaleAge < 0 {
		p = append(p, "Cache ages must not be negative.")
	}
	if c.StreamID == "" || strings.ContainsAny(c.StreamID, " \"'") {
		p = append(p, "The replication stream id must be a non-empty name without spaces or quotes.")
	}
	if (c.AuthIssuer != "" || c.AuthAudience != "") && c.AuthJWTSecret == "" && c.AuthJWTPublicKey == "" {
		p = append(p, "The token issuer and audience need a JWT key: set -auth-jwt-secret or -auth-jwt-public-key.")
	}
	if c.MaxShapes < 0 {
		p = append(p, fmt.Sprintf("The shape limit must be 0 (none) or more, not %d.", c.MaxShapes))
	}
	if c.MaxConcurrentInitial < 1 || c.MaxConcurrentExisting < 1 {
		p = append(p, fmt.Sprintf("The concurrent request limits must be at least 1, not %d (initial) and %d (existing).", c.MaxConcurrentInitial, c.MaxConcurrentExisting))
	}
	if c.SnapshotConcurrency < 0 || c.MaxQueuedSnapshots < 1 || c.MaxOpenLogs < 1 {
		p = append(p, fmt.Sprintf("The snapshot concurrency must be 0 (automatic) or more and the snapshot queue and open-log limits at least 1, not %d, %d and %d.", c.SnapshotConcurrency, c.MaxQueuedSnapshots, c.MaxOpenLogs))
	}
	if c.ShapeTTL < 0 || c.CompactGrace <= 0 || c.CompactMinOps < -1 || c.CompactMinOps == 0 {
		p = append(p, fmt.Sprintf("The shape TTL must be 0 (none) or more, the compaction grace positive and the compaction threshold -1 (never) or positive, not %s, %s and %d.", c.ShapeTTL, c.CompactGrace, c.CompactMinOps))
	}
	if c.StallTimeout <= 0 {
		p = append(p, "The stall timeout must be above 0.")
	}
	if c.MaxShapesPerPrincipal < 0 || c.MaxConnsPerIP < 0 {
		p = append(p, fmt.Sprintf("The per-principal shape quota and the per-address connection limit must be 0 (none) or more, not %d and %d.", c.MaxShapesPerPrincipal, c.MaxConnsPerIP))
	}
	if c.IdleTimeout <= 0 || c.HeaderTimeout <= 0 || c.BodyTimeout <= 0 {
		p = append(p, fmt.Sprintf("The idle, header and body timeouts must be above 0, not %s, %s and %s.", c.IdleTimeout, c.HeaderTimeout, c.BodyTimeout))
	}
	if _, err := c.corsOrigins(); err != nil {
		p = append(p, err.Error())
	}
	if c.ShapeTokenTTL <= 0 {
		p = append(p, "The shape token lifetime must be above 0.")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p = append(p, fmt.Sprintf("The log level must be debug, info, warn or error, not %q.", c.LogLevel))
	}
	return p
}

// corsOrigins returns -cors-origins as a list (nil when not set), refusing
// an entry that is neither "*" nor an origin: scheme://host[:port].
func (c *Config) corsOrigins() ([]string, error) {
	if strings.TrimSpace(c.CORSOrigins) == "" {
		return nil, nil
	}
	var list []string
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		o = strings.TrimSpace(o)
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
				u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") {
				return nil, fmt.Errorf("-cors-origins: %q is not an origin: write scheme://host[:port], such as https://app.example.com, or *.", o)
			}
		}
		list = append(list, o)
	}
	return list, nil
}

// listenHost returns the host to listen on, refusing a non-loopback one
// when nothing protects reads: no API secret and no rules file. Without a
// host, volt listens on every interface when reads are protected (or with
// -insecure), and on 127.0.0.1 otherwise. note is a line for the log; warn
// says whether it is a warning.
func (c *Config) listenHost() (host, note string, warn bool, err error) {
	protected := c.Secret != "" || c.Rules != ""
	open := "every shape is readable by anyone who can connect"
	switch {
	case c.ListenHost == "" && protected:
		return "", "", false, nil
	case c.ListenHost == "" && c.Insecure:
		return "", "-insecure: listening on every interface without -secret or -rules; " + open, true, nil
	case c.ListenHost == "":
		return "127.0.0.1", "listening on 127.0.0.1 only: set -secret or -rules (docs/AUTH.md) to serve other machines", false, nil
	case protected || isLoopback(c.ListenHost):
		return c.ListenHost, "", false, nil
	case c.Insecure:
		return c.ListenHost, "-insecure: listening on " + c.ListenHost + " without -secret or -rules; " + open, true, nil
	}
	return "", "", false, fmt.Errorf("refusing to listen on %s without VOLT_SECRET or a rules file (VOLT_RULES) to protect reads; set one of them, or pass --insecure to let anyone who can connect read every shape", c.ListenHost)
}

// isLoopback reports whether host only accepts local connections.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// The flag.Values of settings; String shows the current value (the
// default in -h).
type (
	strValue      struct{ p *string }
	intValue      struct{ p *int }
	boolValue     struct{ p *bool }
	durationValue struct{ p *time.Duration }
)

func str(p *string) flag.Value             { return strValue{p} }
func integer(p *int) flag.Value            { return intValue{p} }
func boolean(p *bool) flag.Value           { return boolValue{p} }
func duration(p *time.Duration) flag.Value { return durationValue{p} }
func (v strValue) Set(s string) error      { *v.p = s; return nil }
func (v strValue) String() string          { return deref(v.p) }
func (v intValue) String() string          { return strconv.Itoa(deref(v.p)) }
func (v boolValue) String() string         { return strconv.FormatBool(deref(v.p)) }
func (v boolValue) IsBoolFlag() bool       { return true } // --insecure needs no value
func (v durationValue) String() string     { return deref(v.p).String() }

// deref returns *p, or the zero value for the nil pointers of flag's
// zero-value checks.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v.p = n
	return nil
}

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not true or false")
	}
	*v.p = b
	return nil
}

// Set accepts Go durations ("20s") and, like Electric, plain milliseconds.
func (v durationValue) Set(s string) error {
	if ms, err := strconv.Atoi(s); err == nil {
		*v.p = time.Duration(ms) * time.Millisecond
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 20s or a number of milliseconds")
	}
	*v.p = d
	return nil
}
