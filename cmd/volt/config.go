package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// setting is one configuration value: its flag, its environment names
// (volt's first, then Electric's aliases) and how to parse it.
type setting struct {
	flag  string
	env   []string
	usage string
	val   flag.Value
}

// settings lists c's settings, bound to its fields.
func settings(c *Config) []setting {
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
		{"query-timeout", []string{"VOLT_QUERY_TIMEOUT"}, "longest a statement of a shape may run in Postgres (initial snapshot, subset, move-in query; statement_timeout on -db-pool-size's connections): a shape whose query runs longer gets 400, a shape whose move-in query does is removed (409); 0 for no limit (duration, or milliseconds)", duration(&c.QueryTimeout)},
		{"write-pool-size", []string{"VOLT_WRITE_POOL_SIZE"}, "connections for POST /v1/mutations, separate from -db-pool-size; each runs one batch of client transactions at a time (group commit, docs/MUTATIONS.md)", integer(&c.WritePoolSize)},
		{"max-write-transactions", []string{"VOLT_MAX_WRITE_TRANSACTIONS"}, "transactions in one POST /v1/mutations request before 413", integer(&c.MaxWriteTransactions)},
		{"max-write-mutations", []string{"VOLT_MAX_WRITE_MUTATIONS"}, "mutations (of all transactions) in one POST /v1/mutations request before 413", integer(&c.MaxWriteMutations)},
		{"write-lsn-wait", []string{"VOLT_WRITE_LSN_WAIT"}, "how long the answer to a write request that asks for it (\"wait\": \"lsn\") waits for replication to report each transaction's exact commit LSN before it carries an upper bound; other answers do not wait (duration, or milliseconds)", duration(&c.WriteLSNWait)},
		{"schema-check-interval", []string{"VOLT_SCHEMA_CHECK_INTERVAL"}, "how often synced tables are checked for DDL", duration(&c.SchemaCheck)},
		{"auth-jwt-secret", []string{"VOLT_AUTH_JWT_SECRET"}, "HS256 secret (32 bytes or more) for Authorization: Bearer tokens on POST /v1/mutations", str(&c.AuthJWTSecret)},
		{"auth-jwt-public-key", []string{"VOLT_AUTH_JWT_PUBLIC_KEY"}, "PEM file of RS256/ES256 public keys for bearer tokens on POST /v1/mutations", str(&c.AuthJWTPublicKey)},
		{"auth-issuer", []string{"VOLT_AUTH_ISSUER"}, "required iss of bearer tokens", str(&c.AuthIssuer)},
		{"auth-audience", []string{"VOLT_AUTH_AUDIENCE"}, "required aud of bearer tokens", str(&c.AuthAudience)},
		{"subqueries", []string{"VOLT_SUBQUERIES", "VOLT_EXPERIMENTAL_SUBQUERIES"}, "accept where clauses with IN (SELECT …) subqueries, in shapes and in rules, with move-in/move-out (docs/COMPATIBILITY.md); false answers them 400", boolean(&c.Subqueries)},
		{"max-subquery-values", []string{"VOLT_MAX_SUBQUERY_VALUES"}, "values (and rows of nested subqueries' tables) one shape's subqueries may hold: a new shape over it gets 400, a shape that grows past it is removed (409); 0 for no limit", integer(&c.MaxSubqueryValues)},
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
		{"compact-min-ops", []string{"VOLT_COMPACT_MIN_OPS"}, "compact a shape log as it grows once it holds more than twice its rows and at least this many messages; a log over twice its rows but under this is compacted after 2s without changes (-1: never)", integer(&c.CompactMinOps)},
		{"metrics-port", []string{"VOLT_METRICS_PORT", "ELECTRIC_PROMETHEUS_PORT"}, "serve Prometheus metrics at /metrics on this port, on the same host as the API (0: off; docs/OPERATIONS.md)", integer(&c.MetricsPort)},
		{"standby", []string{"VOLT_STANDBY"}, "when another volt holds -storage-dir, wait as a standby (health: 202 waiting) and take over when it exits; false: exit at once naming it", boolean(&c.Standby)},
		{"compact-grace", []string{"VOLT_COMPACT_GRACE"}, "how long a compacted shape's old log keeps serving after its last client request (then its clients get 409; at most 2 old logs per shape are kept)", duration(&c.CompactGrace)},
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
		printSettings(out, settings(&d))
	}
	problems := bindSettings(fs, settings(&c), getenv)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	problems = append(problems, c.Validate()...)
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
