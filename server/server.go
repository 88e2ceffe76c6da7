// Package server owns a volt server's lifecycle: the storage lock (or the
// standby wait for it), the embedded Postgres, the database pools, the
// shape cache, the replication reader and its retry loop, the HTTP API
// and the metrics listener. Open starts them in that order; Close stops
// them in the reverse order, joining each goroutine, so that replication
// has stopped before the shape logs close and the logs are flushed before
// Postgres goes. volt serve and volt demo run it; volt bench and the
// end-to-end tests run volt serve.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/internal/pgembed"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shapecache"
	"github.com/voltsync/volt/shapelog"
)

// Hooks let a command run the server with a few additions (volt demo).
// The zero value is volt serve.
type Hooks struct {
	// Setup runs once the database pool is open, before anything else uses
	// it (the demo creates its tables).
	Setup func(ctx context.Context, pool *pgxpool.Pool) error
	// Allow and Check decide every row written through POST /v1/mutations,
	// instead of the rules file or InsecureWrites: Allow before any
	// statement runs, Check on the row inside the client transaction.
	Allow mutations.AllowFunc
	Check mutations.CheckFunc
	// Web, when set, wraps the API's handler to serve more paths on the
	// same listener (the demo's page).
	Web func(api http.Handler) http.Handler
}

// Server is a running volt server.
type Server struct {
	cfg Config
	log *slog.Logger

	// stops are the started parts' stop functions, in start order.
	stops []stop
	// closing guards Close.
	closing sync.Once
	closed  error

	api      *httpapi.Server
	cache    *shapecache.Cache
	takeover net.Listener // a standby's listener, handed over (standby.go)

	failOnce sync.Once
	failed   chan struct{} // closed when a part stops on its own
	err      error
}

// stop is how one started part is stopped.
type stop struct {
	name string
	fn   func(ctx context.Context) error
}

func (s *Server) onClose(name string, fn func(ctx context.Context) error) {
	s.stops = append(s.stops, stop{name, fn})
}

// fail records the first part that stopped on its own.
func (s *Server) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		close(s.failed)
	})
}

// Failed is closed when a part of the server stops on its own (Err says
// which and why); the server should then be closed.
func (s *Server) Failed() <-chan struct{} { return s.failed }

// Err is the reason Failed was closed.
func (s *Server) Err() error {
	select {
	case <-s.failed:
		return s.err
	default:
		return nil
	}
}

// Port is the API's port.
func (s *Server) Port() int { return s.api.Port() }

// Cache is the server's shape cache.
func (s *Server) Cache() *shapecache.Cache { return s.cache }

// Run opens the server, serves until ctx ends or a part fails, and closes
// it. A ctx that ends while the server opens (a standby that is stopped,
// for one) is a clean stop, not an error.
func Run(ctx context.Context, cfg Config, log *slog.Logger, hooks Hooks) error {
	s, err := Open(ctx, cfg, log, hooks)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			log.Info("stopped before serving")
			return nil
		}
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-s.Failed():
		runErr = s.Err()
		log.Error("shutting down", "err", runErr)
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.Close(closeCtx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// Open starts the server and returns once it serves. If another volt holds
// cfg.StorageDir, Open waits as a standby until it can take over
// (cfg.Standby) or fails naming the other. On error, whatever was started
// is stopped again.
func Open(ctx context.Context, cfg Config, log *slog.Logger, hooks Hooks) (_ *Server, err error) {
	if p := cfg.Validate(); len(p) > 0 {
		return nil, fmt.Errorf("configuration: %s", p[0])
	}
	host, note, warn, err := cfg.ListenAddress()
	if err != nil {
		return nil, err
	}
	if warn {
		log.Warn(note)
	} else if note != "" {
		log.Info(note)
	}
	verifier, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, failed: make(chan struct{})}
	defer func() {
		if err != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = s.Close(closeCtx)
		}
	}()
	if err := os.MkdirAll(cfg.StorageDir, 0o755); err != nil {
		return nil, fmt.Errorf("create storage dir: %w", err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.Port))
	ln, err := s.lockStorage(ctx, addr)
	if err != nil {
		return nil, err
	}
	// The API's socket is bound from here on: requests that arrive while
	// the rest starts wait in its backlog instead of being refused.
	s.onClose("listener", func(context.Context) error { _ = ln.Close(); return nil })

	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		if dbURL, err = s.startEmbedded(ctx); err != nil {
			return nil, err
		}
	}
	slot, publication := "volt_slot_"+cfg.StreamID, "volt_publication_"+cfg.StreamID
	if err := postgres.Preflight(ctx, postgres.PreflightOptions{
		URL: dbURL, Slot: slot, Publication: publication, Grace: cfg.StartupGrace, Logger: log,
	}); err != nil {
		return nil, err
	}
	pool, writePool, err := s.openPools(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	if hooks.Setup != nil {
		if err := hooks.Setup(ctx, pool); err != nil {
			return nil, err
		}
	}

	reg := newRegistry(cfg)
	inspector := &postgres.Inspector{Pool: pool}
	publisher := postgres.NewPublisher(pool, publication)
	if err := s.openCache(ctx, pool, inspector, publisher, reg); err != nil {
		return nil, err
	}
	reader := postgres.NewReader(postgres.ReaderConfig{URL: dbURL, Publication: publication, Slot: slot, Logger: log})
	if reg != nil {
		if err := reader.RegisterMetrics(reg); err != nil {
			return nil, err
		}
	}
	if err := s.startReplication(ctx, pool, reader, slot); err != nil {
		return nil, err
	}

	api := &httpapi.Server{
		Cache: s.cache, Ready: reader.Connected, Logger: log,
		Config: httpapi.Config{
			Secret: cfg.Secret, LongPollTimeout: cfg.LongPollTimeout, SSETimeout: cfg.SSETimeout,
			CacheMaxAge: cfg.CacheMaxAge, CacheStaleAge: cfg.CacheStaleAge, AllowShapeDeletion: cfg.AllowShapeDeletion,
			MaxShapes: cfg.MaxShapes, MaxConcurrentInitial: cfg.MaxConcurrentInitial, MaxConcurrentExisting: cfg.MaxConcurrentExisting,
			StallTimeout: cfg.StallTimeout, MaxShapesPerPrincipal: cfg.MaxShapesPerPrincipal,
			IdleTimeout: cfg.IdleTimeout, HeaderTimeout: cfg.HeaderTimeout, BodyTimeout: cfg.BodyTimeout,
			MaxConnsPerIP: cfg.MaxConnsPerIP,
		},
	}
	api.Config.CORSOrigins, _ = cfg.CORSOriginList() // checked by Validate
	var rules *auth.Rules
	if cfg.Rules != "" {
		if rules, err = auth.LoadRulesWith(ctx, inspector, cfg.Rules, auth.RulesOptions{Subqueries: cfg.Subqueries}); err != nil {
			return nil, err
		}
	}
	var writeMetrics *mutations.Metrics
	if reg != nil {
		if writeMetrics, err = mutations.NewMetrics(reg); err != nil {
			return nil, err
		}
	}
	lsn := replicatedLSN{cache: s.cache, publisher: publisher}
	if api.Mutations, err = mountMutations(ctx, pool, writePool, cfg, verifier, rules, lsn, writeMetrics, hooks, log); err != nil {
		return nil, err
	}
	if err := mountReadAuth(api, cfg, verifier, rules, log); err != nil {
		return nil, err
	}
	api.Wrap = hooks.Web
	if reg != nil {
		if api.Metrics, err = httpapi.NewMetrics(reg, api); err != nil {
			return nil, err
		}
	}
	s.serveAPI(api, ln)
	if reg != nil {
		m, err := listenMetrics(reg, host, cfg.MetricsPort, log)
		if err != nil {
			return nil, err
		}
		s.onClose("metrics", func(ctx context.Context) error { m.close(ctx); return nil })
	}
	log.Info("volt is serving", "url", fmt.Sprintf("http://localhost:%d/v1/shape", s.Port()), "shapes", s.cache.Len())
	return s, nil
}

// Close stops the server's parts in the reverse order of their start and
// joins their goroutines: the HTTP API (ending live requests), the
// replication reader, the shape cache (final flush), the pools, the
// embedded Postgres, the storage lock. Later calls return the first's
// result.
func (s *Server) Close(ctx context.Context) error {
	s.closing.Do(func() {
		var errs []error
		for i := len(s.stops) - 1; i >= 0; i-- {
			if err := s.stops[i].fn(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", s.stops[i].name, err))
			}
		}
		s.closed = errors.Join(errs...)
	})
	return s.closed
}

// lockStorage takes the storage directory's lock, waiting as a standby if
// another volt holds it and cfg.Standby is set, and returns the API's
// listener, bound.
func (s *Server) lockStorage(ctx context.Context, addr string) (net.Listener, error) {
	lock, err := tryLock(s.cfg.StorageDir)
	var locked *lockedError
	if errors.As(err, &locked) && s.cfg.Standby {
		lock, err = s.waitAsStandby(ctx, addr, locked)
		if err != nil {
			return nil, err
		}
		s.onClose("storage lock", func(context.Context) error { return lock.release() })
		if s.takeover != nil {
			return s.takeover, nil
		}
		return listenAfterTakeover(ctx, addr)
	}
	if err != nil {
		if errors.As(err, &locked) {
			return nil, fmt.Errorf("%w (or let it wait as a standby: -standby=true)", err)
		}
		return nil, err
	}
	s.onClose("storage lock", func(context.Context) error { return lock.release() })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// waitAsStandby waits for the storage lock, answering as a standby on
// addr meanwhile (standby.go). The standby's listener, if it bound one, is
// left in s.takeover.
func (s *Server) waitAsStandby(ctx context.Context, addr string, held *lockedError) (*storageLock, error) {
	sb, err := startStandby(addr, s.log)
	if err != nil {
		return nil, err
	}
	// Logged once the standby's listener is bound: from this line on it
	// answers (202 on /v1/health).
	s.log.Info("waiting as a standby: "+held.owner+" holds the storage directory; this one takes over when it exits",
		"storage_dir", s.cfg.StorageDir)
	lock, err := waitLock(ctx, s.cfg.StorageDir)
	if err != nil {
		sb.close()
		return nil, err
	}
	s.log.Info("the other volt has let go of the storage directory: taking over")
	if ln := sb.handoff(ctx); ln != nil {
		s.takeover = ln
	}
	return lock, nil
}

// listenAfterTakeover binds addr once the instance that held it has gone.
// It exits before it lets go of the storage lock, so the port is normally
// free already; a short retry covers a socket that closes a moment later.
func listenAfterTakeover(ctx context.Context, addr string) (net.Listener, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("listen on %s: %w", addr, err)
			}
			return ln, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// startEmbedded starts the Postgres under the storage dir (no DATABASE_URL)
// and returns its URL.
func (s *Server) startEmbedded(ctx context.Context) (string, error) {
	dir, err := filepath.Abs(filepath.Join(s.cfg.StorageDir, "postgres"))
	if err != nil {
		return "", err
	}
	s.log.Info("DATABASE_URL is not set: using an embedded PostgreSQL", "data_dir", dir)
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, Logger: s.log})
	if err != nil {
		return "", fmt.Errorf("embedded PostgreSQL: %w", err)
	}
	s.onClose("embedded PostgreSQL", func(ctx context.Context) error {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := c.Stop(stopCtx)
		s.log.Info("embedded PostgreSQL stopped")
		return err
	})
	s.log.Info("embedded PostgreSQL ready; connect with", "url", c.URL("postgres"))
	return c.URL("postgres"), nil
}

// openPools opens the pool for snapshots and catalog reads and the write
// endpoint's own: a flood of writes cannot take the connections snapshots
// need, nor snapshots those of writes.
func (s *Server) openPools(ctx context.Context, dbURL string) (pool, writePool *pgxpool.Pool, err error) {
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, nil, fmt.Errorf("database URL: %w", err)
	}
	writeCfg := poolCfg.Copy()
	poolCfg.MaxConns = int32(s.cfg.DBPoolSize)
	if t := s.cfg.QueryTimeout; t > 0 {
		// Whatever a shape's where clause makes Postgres do, it stops
		// here (shapecache.ClientError reports it as the shape's fault).
		// A SET rather than a startup parameter, which a connection
		// pooler in front of Postgres may refuse.
		set := "SET statement_timeout = " + strconv.FormatInt(max(t.Milliseconds(), 1), 10)
		poolCfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			if _, err := conn.Exec(ctx, set); err != nil {
				return fmt.Errorf("set the query timeout: %w", err)
			}
			return nil
		}
	}
	if pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return nil, nil, fmt.Errorf("database pool: %w", err)
	}
	s.onClose("database pool", func(context.Context) error { pool.Close(); return nil })
	writeCfg.MaxConns = int32(s.cfg.WritePoolSize)
	if writePool, err = pgxpool.NewWithConfig(ctx, writeCfg); err != nil {
		return nil, nil, fmt.Errorf("database write pool: %w", err)
	}
	s.onClose("database write pool", func(context.Context) error { writePool.Close(); return nil })
	return pool, writePool, nil
}

// openCache opens the shape store and cache, restoring the shapes of the
// last run.
func (s *Server) openCache(ctx context.Context, pool *pgxpool.Pool, inspector *postgres.Inspector, publisher *postgres.Publisher, reg *prometheus.Registry) error {
	cfg := s.cfg
	store, err := shapelog.OpenStore(filepath.Join(cfg.StorageDir, "shapes"), shapelog.Options{ChunkBytes: cfg.ChunkBytes, DeferSnapshotSync: true})
	if err != nil {
		return fmt.Errorf("open shape store: %w", err)
	}
	cache := &shapecache.Cache{
		Store: store, Inspector: inspector, Snapshotter: &postgres.Snapshotter{Pool: pool}, Publisher: publisher,
		Logger: s.log, SchemaCheckInterval: cfg.SchemaCheck,
		SnapshotConcurrency: cfg.SnapshotConcurrency, MaxQueuedSnapshots: cfg.MaxQueuedSnapshots,
		MaxOpenLogs: cfg.MaxOpenLogs, ShapeTTL: cfg.ShapeTTL, Subqueries: cfg.Subqueries, MaxSubqueryValues: cfg.MaxSubqueryValues,
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
	s.cache = cache
	s.onClose("shape cache", func(context.Context) error { return cache.Close() })
	return nil
}

// startReplication sets up the publication and slot (retrying while
// Postgres is unreachable) and starts the reader on the cache
// (shapecache.Cache.Follow), which stops and joins it when it closes.
func (s *Server) startReplication(ctx context.Context, pool *pgxpool.Pool, reader *postgres.Reader, slot string) error {
	if err := setupReplication(ctx, reader, s.cache, s.log); err != nil {
		return err
	}
	var slotLSN uint64
	if err := pool.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn - '0/0'::pg_lsn, 0)::int8 FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&slotLSN); err == nil {
		s.cache.SetStartLSN(slotLSN)
	}
	// The cache runs the reader and stops it before it closes, so no
	// transaction is routed into a closing cache.
	stopped := s.cache.Follow(func(ctx context.Context) error { return runReplication(ctx, reader, s.cache, s.log) })
	go func() { // ends when the feed does: the channel is closed then
		if err, ok := <-stopped; ok {
			if err == nil {
				err = errors.New("the replication loop returned")
			}
			s.fail(fmt.Errorf("replication stopped: %w", err))
		}
	}()
	return nil
}

// serveAPI serves the HTTP API on ln until Close, which drains it (live
// requests end at once, the others get up to ten seconds).
func (s *Server) serveAPI(api *httpapi.Server, ln net.Listener) {
	api.ListenOn(ln)
	s.api = api
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := api.Serve(); err != nil {
			s.fail(fmt.Errorf("http server stopped: %w", err))
		}
	}()
	s.onClose("http", func(ctx context.Context) error {
		shut, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := api.Close(shut)
		<-done
		if errors.Is(err, context.DeadlineExceeded) {
			return nil // the rest were cut off; nothing is lost
		}
		return err
	})
}
