package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/internal/pgembed"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shapecache"
	"github.com/voltsync/volt/shapelog"
)

// Serve runs the server until ctx is cancelled, then shuts down in order:
// HTTP, replication, shape logs (final flush), database pool, embedded Postgres.
func Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	return serve(ctx, cfg, log, serveHooks{})
}

// serveHooks let another command run the same server with a few additions
// (volt demo, demo.go). The zero value is volt serve.
type serveHooks struct {
	// setup runs once the database pool is open, before anything else uses
	// it (the demo creates its tables).
	setup func(ctx context.Context, pool *pgxpool.Pool) error
	// allow and check decide every row written through POST /v1/mutations,
	// instead of -rules or -insecure-writes: allow before any statement
	// runs, check on the row inside the client transaction.
	allow mutations.AllowFunc
	check mutations.CheckFunc
	// web, when set, wraps the API's handler to serve more paths on the
	// same listener (demo.go's page and /demo/reject-next).
	web func(api http.Handler) http.Handler
}

func serve(ctx context.Context, cfg Config, log *slog.Logger, hooks serveHooks) error {
	host, note, warn, err := cfg.listenHost()
	if err != nil {
		return err
	}
	if warn {
		log.Warn(note)
	} else if note != "" {
		log.Info(note)
	}
	verifier, err := newVerifier(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.StorageDir, 0o755); err != nil {
		return fmt.Errorf("create storage dir: %w", err)
	}
	unlock, err := lockStorage(cfg.StorageDir)
	if err != nil {
		return err
	}
	defer unlock()
	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		cluster, err := startEmbedded(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = cluster.Stop(stopCtx)
			log.Info("embedded PostgreSQL stopped")
		}()
		dbURL = cluster.URL("postgres")
	}
	if err := postgres.Preflight(ctx, postgres.PreflightOptions{
		URL: dbURL, Slot: "volt_slot_" + cfg.StreamID, Publication: "volt_publication_" + cfg.StreamID,
		Grace: cfg.StartupGrace, Logger: log,
	}); err != nil {
		return err
	}
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("database URL: %w", err)
	}
	poolCfg.MaxConns = int32(cfg.DBPoolSize)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	defer pool.Close()
	// Writes have a pool of their own: a flood of writes cannot take the
	// connections snapshots need, nor snapshots those of writes.
	writeCfg := poolCfg.Copy()
	writeCfg.MaxConns = int32(cfg.WritePoolSize)
	writePool, err := pgxpool.NewWithConfig(ctx, writeCfg)
	if err != nil {
		return fmt.Errorf("database write pool: %w", err)
	}
	defer writePool.Close()
	if hooks.setup != nil {
		if err := hooks.setup(ctx, pool); err != nil {
			return err
		}
	}

	reg := newRegistry(cfg)
	store, err := shapelog.OpenStore(filepath.Join(cfg.StorageDir, "shapes"), shapelog.Options{ChunkBytes: cfg.ChunkBytes, DeferSnapshotSync: true})
	if err != nil {
		return fmt.Errorf("open shape store: %w", err)
	}
	inspector := &postgres.Inspector{Pool: pool}
	publisher := postgres.NewPublisher(pool, "volt_publication_"+cfg.StreamID)
	cache := &shapecache.Cache{
		Store: store, Inspector: inspector, Snapshotter: &postgres.Snapshotter{Pool: pool}, Publisher: publisher,
		Logger: log, SchemaCheckInterval: cfg.SchemaCheck,
		SnapshotConcurrency: cfg.SnapshotConcurrency, MaxQueuedSnapshots: cfg.MaxQueuedSnapshots,
		MaxOpenLogs: cfg.MaxOpenLogs, ShapeTTL: cfg.ShapeTTL,
		Compaction: shapecache.Compaction{MinOps: int64(cfg.CompactMinOps), Grace: cfg.CompactGrace},
	}
	if reg != nil {
		if cache.Metrics, err = shapecache.NewMetrics(reg, cache); err != nil {
			return err
		}
	}
	if cache.SnapshotConcurrency == 0 {
		cache.SnapshotConcurrency = max(1, cfg.DBPoolSize/2)
	}
	if err := cache.Open(ctx); err != nil {
		return err
	}
	defer cache.Close()

	reader := postgres.NewReader(postgres.ReaderConfig{
		URL: dbURL, Publication: publisher.Name(), Slot: "volt_slot_" + cfg.StreamID, Logger: log,
	})
	if reg != nil {
		if err := reader.RegisterMetrics(reg); err != nil {
			return err
		}
	}
	if err := setupReplication(ctx, reader, cache, log); err != nil {
		return err
	}
	var slotLSN uint64
	if err := pool.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn - '0/0'::pg_lsn, 0)::int8 FROM pg_replication_slots WHERE slot_name = $1`, "volt_slot_"+cfg.StreamID).Scan(&slotLSN); err == nil {
		cache.SetStartLSN(slotLSN)
	}
	replDone := make(chan error, 1)
	replCtx, stopRepl := context.WithCancel(context.WithoutCancel(ctx))
	go func() { replDone <- runReplication(replCtx, reader, cache, log) }()

	srv := &httpapi.Server{
		Cache: cache, Inspector: inspector, Snapshotter: cache.Snapshotter, Ready: reader.Connected, Logger: log,
		Config: httpapi.Config{
			Secret: cfg.Secret, LongPollTimeout: cfg.LongPollTimeout, SSETimeout: cfg.SSETimeout,
			CacheMaxAge: cfg.CacheMaxAge, CacheStaleAge: cfg.CacheStaleAge, AllowShapeDeletion: cfg.AllowShapeDeletion,
			MaxShapes: cfg.MaxShapes, MaxConcurrentInitial: cfg.MaxConcurrentInitial, MaxConcurrentExisting: cfg.MaxConcurrentExisting,
			StallTimeout: cfg.StallTimeout, MaxShapesPerPrincipal: cfg.MaxShapesPerPrincipal,
			IdleTimeout: cfg.IdleTimeout, HeaderTimeout: cfg.HeaderTimeout, BodyTimeout: cfg.BodyTimeout,
			MaxConnsPerIP: cfg.MaxConnsPerIP,
		},
	}
	srv.Config.CORSOrigins, _ = cfg.corsOrigins() // validated by LoadConfig
	var rules *auth.Rules
	if cfg.Rules != "" {
		if rules, err = auth.LoadRules(ctx, inspector, cfg.Rules); err != nil {
			stopRepl()
			return err
		}
	}
	lsn := replicatedLSN{cache: cache, publisher: publisher}
	var writeMetrics *mutations.Metrics
	if reg != nil {
		if writeMetrics, err = mutations.NewMetrics(reg); err != nil {
			stopRepl()
			return err
		}
	}
	if srv.Mutations, err = mountMutations(ctx, pool, writePool, cfg, verifier, rules, lsn, writeMetrics, hooks, log); err != nil {
		stopRepl()
		return err
	}
	if err := mountReadAuth(srv, cfg, verifier, rules, log); err != nil {
		stopRepl()
		return err
	}
	srv.Wrap = hooks.web
	if reg != nil {
		if srv.Metrics, err = httpapi.NewMetrics(reg, srv); err != nil {
			stopRepl()
			return err
		}
	}
	if err := srv.Listen(net.JoinHostPort(host, strconv.Itoa(cfg.Port))); err != nil {
		stopRepl()
		return err
	}
	var metrics *metricsServer
	if reg != nil {
		if metrics, err = listenMetrics(reg, host, cfg.MetricsPort, log); err != nil {
			stopRepl()
			_ = srv.Close(context.Background())
			return err
		}
	}
	log.Info("volt is serving", "url", fmt.Sprintf("http://localhost:%d/v1/shape", srv.Port()), "shapes", cache.Len())
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve() }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-replDone:
		runErr = fmt.Errorf("replication stopped: %w", err)
	case err := <-httpDone:
		runErr = fmt.Errorf("http server stopped: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Close(shutCtx)
	metrics.close(shutCtx)
	stopRepl()
	return runErr
}

// startEmbedded starts the Postgres under the storage dir (no DATABASE_URL).
func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*pgembed.Cluster, error) {
	dir, err := filepath.Abs(filepath.Join(cfg.StorageDir, "postgres"))
	if err != nil {
		return nil, err
	}
	log.Info("DATABASE_URL is not set: using an embedded PostgreSQL", "data_dir", dir)
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("embedded PostgreSQL: %w", err)
	}
	log.Info("embedded PostgreSQL ready; connect with", "url", c.URL("postgres"))
	return c, nil
}

// runReplication streams into the cache until ctx ends. A slot that
// disappears (dropped by an operator, or lost with the database) is created
// again, and the shapes it fed are purged so their clients re-sync.
func runReplication(ctx context.Context, r *postgres.Reader, cache *shapecache.Cache, log *slog.Logger) error {
	for {
		err := r.Run(ctx, cache)
		if !errors.Is(err, postgres.ErrSlotMissing) || ctx.Err() != nil {
			return err
		}
		log.Warn("replication slot is gone; creating it again and discarding every shape")
		cache.Purge("replication slot was lost")
		if err := setupReplication(ctx, r, cache, log); err != nil {
			return err
		}
	}
}

// setupReplication creates (or finds) the publication and slot, retrying
// while Postgres is unreachable. A new slot cannot continue old shape logs,
// so they are purged.
func setupReplication(ctx context.Context, r *postgres.Reader, cache *shapecache.Cache, log *slog.Logger) error {
	backoff := 100 * time.Millisecond
	for {
		created, err := r.Setup(ctx)
		if err == nil {
			if created && cache.Len() > 0 {
				cache.Purge("replication slot was created anew")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !postgres.IsRetryable(err) {
			return fmt.Errorf("replication setup: %w", err)
		}
		log.Warn("replication setup failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff + rand.N(backoff/2)):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// mountMutations creates the volt schema and returns the write endpoint's
// handler, writing through writePool. When the schema cannot be created
// the endpoint answers 503 to every request (nothing is recorded). A rules
// file that does not compile is an error. A non-nil hooks.check (volt
// demo) replaces the policy, with hooks.allow deciding tables first.
func mountMutations(ctx context.Context, pool, writePool *pgxpool.Pool, cfg Config, verifier *auth.Verifier, rules *auth.Rules, lsn replicatedLSN, metrics *mutations.Metrics, hooks serveHooks, log *slog.Logger) (http.Handler, error) {
	policy := &auth.Policy{Verifier: verifier}
	if rules != nil {
		if verifier == nil && rules.UsesClaims() {
			return nil, fmt.Errorf("rules file %s refers to $claims, but no JWT key is configured: set -auth-jwt-secret or -auth-jwt-public-key", cfg.Rules)
		}
		policy.Rules = rules
	}
	if err := mutations.Migrate(ctx, pool); err != nil {
		log.Warn("POST /v1/mutations is disabled: cannot create the volt schema", "err", err)
		return writesDisabled{}, nil
	}
	// Every accepted transaction writes a receipt: with volt.receipts
	// published, replication reports each one's exact commit LSN.
	if err := lsn.publisher.AddTable(ctx, "volt", "receipts"); err != nil {
		log.Warn("cannot publish volt.receipts; write results carry an upper bound of the commit LSN", "err", err)
	}
	opts := policy.Options(mutations.Options{
		Logger: log, LSN: lsn, LSNWait: cfg.WriteLSNWait, Metrics: metrics,
		MaxTransactions: cfg.MaxWriteTransactions, MaxMutations: cfg.MaxWriteMutations,
	})
	if hooks.check != nil {
		opts.Allow, opts.Check = hooks.allow, hooks.check
	} else if policy.Rules == nil && !cfg.InsecureWrites {
		// Nothing is writable: each request is refused as a whole and
		// nothing is recorded, so the same seqs apply once rules are added.
		opts.Authorize = refuseWithoutRules
		log.Info("POST /v1/mutations refuses every request (403) until write rules are configured (-rules, docs/AUTH.md; -insecure-writes for development)")
	} else {
		warnPolicy(policy, log)
	}
	return mutations.New(writePool, opts), nil
}

// writesDisabled answers the write endpoint when the volt schema could not
// be created.
type writesDisabled struct{}

func (writesDisabled) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("content-type", "application/json; charset=utf-8")
	w.Header().Set("cache-control", "no-store")
	w.Header().Set("retry-after", "60")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"message":"the write endpoint is disabled: volt could not create its schema volt (see the server log); nothing was applied or recorded"}`))
}

// mountReadAuth turns on read authorisation when a rules file is given:
// requests without the API secret are decided by the read rules, and with
// a JWT key, POST /v1/shape-token issues shape tokens.
func mountReadAuth(srv *httpapi.Server, cfg Config, verifier *auth.Verifier, rules *auth.Rules, log *slog.Logger) error {
	srv.Config.AuthorizedCachePublic = cfg.AuthorizedCachePublic
	if rules == nil {
		if cfg.Secret == "" {
			log.Warn("GET /v1/shape serves every table to every client: no -secret and no -rules (docs/AUTH.md)")
		}
		return nil
	}
	policy := &auth.ReadPolicy{Verifier: verifier, Rules: rules}
	srv.ReadAuth = policy
	if verifier == nil {
		log.Info("GET /v1/shape applies the read rules to anonymous requests (no JWT key is configured); the API secret reads everything")
		return nil
	}
	secret := cfg.AuthJWTSecret
	if secret == "" {
		secret = cfg.Secret
	}
	tokens, err := auth.NewShapeTokens(auth.DeriveShapeTokenKey(secret), cfg.ShapeTokenTTL, nil)
	if err != nil {
		return err
	}
	policy.Tokens = tokens
	srv.ShapeTokens = policy.TokenHandler()
	cache := "private"
	if cfg.AuthorizedCachePublic {
		cache = "public with Vary: Authorization"
	}
	log.Info("GET /v1/shape requires a valid token and applies the read rules; the API secret reads everything; POST /v1/shape-token issues shape tokens", "authorized_cache", cache)
	if secret == "" {
		log.Info("shape tokens are signed with a random key: they become invalid when volt restarts")
	}
	return nil
}

// refuseWithoutRules is the write endpoint's Authorize when nothing says
// who may write what: every request is a 403 that records nothing.
func refuseWithoutRules(context.Context, *http.Request) (any, error) {
	return nil, fmt.Errorf("%w: no write rules are configured on this server (start volt serve with -rules, see docs/AUTH.md); nothing was applied or recorded", mutations.ErrForbidden)
}

// warnPolicy logs what the write endpoint's configuration leaves open.
func warnPolicy(p *auth.Policy, log *slog.Logger) {
	switch {
	case p.Verifier == nil && p.Rules == nil:
		log.Warn("-insecure-writes: POST /v1/mutations accepts writes to every table in schema public from any client; set -rules and a JWT key instead (docs/AUTH.md)")
	case p.Rules == nil:
		log.Warn("POST /v1/mutations requires a valid token, but without -rules every authenticated client can write every table in schema public")
	case p.Verifier == nil:
		log.Warn("POST /v1/mutations applies the write rules to anonymous requests: no JWT key is configured")
	default:
		log.Info("POST /v1/mutations requires a valid token and applies the write rules")
	}
}

// newVerifier builds the bearer-token verifier from the configuration; nil
// when no JWT key is set.
func newVerifier(cfg Config) (*auth.Verifier, error) {
	if cfg.AuthJWTSecret == "" && cfg.AuthJWTPublicKey == "" {
		return nil, nil
	}
	jc := auth.JWTConfig{Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience}
	if cfg.AuthJWTSecret != "" {
		jc.Secret = []byte(cfg.AuthJWTSecret)
	}
	if pemText := cfg.AuthJWTPublicKey; pemText != "" {
		if !strings.HasPrefix(strings.TrimSpace(pemText), "-----BEGIN") {
			b, err := os.ReadFile(pemText)
			if err != nil {
				return nil, fmt.Errorf("JWT public key: %w", err)
			}
			pemText = string(b)
		}
		jc.PublicKeysPEM = []byte(pemText)
	}
	v, err := auth.NewVerifier(jc)
	if err != nil {
		return nil, fmt.Errorf("JWT configuration: %w", err)
	}
	return v, nil
}

// replicatedLSN reports an accepted write's exact commit LSN, as the
// replication stream delivers it (within a short wait); otherwise the
// handler reports Postgres' WAL insert position read after COMMIT, an
// upper bound.
type replicatedLSN struct {
	cache     *shapecache.Cache
	publisher *postgres.Publisher
}

func (r replicatedLSN) CommitLSN(ctx context.Context, xid8 string) (uint64, error) {
	x, err := strconv.ParseUint(xid8, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("xid8 %q: %w", xid8, err)
	}
	lsn, _ := r.cache.CommitLSN(ctx, uint32(x)) // the handler bounds the wait (-write-lsn-wait)
	return lsn, nil
}
