package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/mutations"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shapecache"
)

// mountMutations creates the volt schema and returns the write endpoint's
// handler, writing through writePool. When the schema cannot be created
// the endpoint answers 503 to every request (nothing is recorded). A rules
// file that does not compile is an error. A non-nil hooks.Check (volt
// demo) replaces the policy, with hooks.Allow deciding tables first.
func mountMutations(ctx context.Context, pool, writePool *pgxpool.Pool, cfg Config, verifier *auth.Verifier, rules *auth.Rules, lsn replicatedLSN, metrics *mutations.Metrics, hooks Hooks, log *slog.Logger) (http.Handler, error) {
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
	// published, replication reports each one's exact commit LSN (to
	// requests that ask for it, and in the receipts' shapes).
	if err := lsn.publisher.AddTable(ctx, "volt", "receipts"); err != nil {
		log.Warn("cannot publish volt.receipts; write results that ask for the exact commit LSN carry an upper bound", "err", err)
	}
	opts := policy.Options(mutations.Options{
		Logger: log, LSN: lsn, LSNWait: cfg.WriteLSNWait, Metrics: metrics,
		MaxTransactions: cfg.MaxWriteTransactions, MaxMutations: cfg.MaxWriteMutations,
	})
	if hooks.Check != nil {
		opts.Allow, opts.Check = hooks.Allow, hooks.Check
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
