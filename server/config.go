package server

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/shapecache"
)

// Config is the server's configuration. cmd/volt fills it from flags and
// environment variables; DefaultConfig gives the values used when nothing
// is set.
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
	// Subqueries accepts where clauses with IN (SELECT …) subqueries in
	// shapes and rules (shapecache.Cache.Subqueries, auth.RulesOptions);
	// on by default.
	Subqueries bool
	// MaxSubqueryValues bounds the values one shape's subqueries hold
	// (shapecache.Cache.MaxSubqueryValues; 0: no limit).
	MaxSubqueryValues int
	// QueryTimeout bounds each statement on the snapshot pool (initial
	// snapshots, subsets, move-in queries, catalog reads) as Postgres'
	// statement_timeout, so that no shape's query holds a connection and
	// Postgres' CPU for longer (0: no bound).
	QueryTimeout time.Duration
	// MetricsPort serves Prometheus metrics at /metrics on a listener of
	// its own, on the same host as the API (0: off).
	MetricsPort int
	// Standby makes Open wait while another volt holds the storage
	// directory, answering /v1/health with 202 {"status":"waiting"} if it
	// can bind its port, and take over when the other exits or dies;
	// false makes Open fail at once naming the other.
	Standby bool

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
		QueryTimeout:    5 * time.Minute,
		StartupGrace:    30 * time.Second,
		ShapeTokenTTL:   10 * time.Minute,
		Standby:         true,

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
		Subqueries:         true,
		MaxSubqueryValues:  shapecache.DefaultMaxSubqueryValues,
		MaxOpenLogs:        shapecache.DefaultMaxOpenLogs,
		CompactMinOps:      shapecache.DefaultCompactMinOps,
		CompactGrace:       shapecache.DefaultCompactGrace,
	}
}

// Validate returns one sentence per invalid setting (none when the
// configuration can be served).
func (c *Config) Validate() []string {
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
	if c.QueryTimeout < 0 {
		p = append(p, fmt.Sprintf("The query timeout must be 0 (none) or more, not %s.", c.QueryTimeout))
	}
	if c.MaxSubqueryValues < 0 {
		p = append(p, fmt.Sprintf("The subquery value limit must be 0 (none) or more, not %d.", c.MaxSubqueryValues))
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
	if _, err := c.CORSOriginList(); err != nil {
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

// CORSOriginList returns -cors-origins as a list (nil when not set), refusing
// an entry that is neither "*" nor an origin: scheme://host[:port].
func (c *Config) CORSOriginList() ([]string, error) {
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

// ListenAddress returns the host to listen on, refusing a non-loopback one
// when nothing protects reads: no API secret and no rules file. Without a
// host, volt listens on every interface when reads are protected (or with
// -insecure), and on 127.0.0.1 otherwise. note is a line for the log; warn
// says whether it is a warning.
func (c *Config) ListenAddress() (host, note string, warn bool, err error) {
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
