package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/voltsync/volt/internal/backoff"
)

// PreflightOptions say what Preflight checks.
type PreflightOptions struct {
	URL         string
	Slot        string // volt's slot: when it exists, no free slot is needed
	Publication string // volt's publication: with it and schema volt, CREATE is not needed
	// Grace is how long an unreachable host is retried before Preflight
	// gives up; 0 tries once.
	Grace  time.Duration
	Logger *slog.Logger
}

// Preflight connects to Postgres as volt will and checks what replication
// needs: wal_level, the role's REPLICATION attribute, CREATE on the
// database, a free replication slot and a free WAL sender. Each failure is
// an error of one sentence naming the fix. Wrong credentials or an unknown
// database fail at once; a host that cannot be reached (refused, DNS,
// timeout, Postgres still starting) is retried until Grace has passed.
func Preflight(ctx context.Context, o PreflightOptions) error {
	conn, err := connectWithGrace(ctx, o)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return preflightChecks(ctx, conn, o)
}

// connectWithGrace opens a connection, retrying errors that a host coming
// up would cause until o.Grace has passed.
func connectWithGrace(ctx context.Context, o PreflightOptions) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid Postgres URL (%v); use postgres://user:password@host:port/database", err)
	}
	delete(cfg.RuntimeParams, "replication")
	deadline := time.Now().Add(o.Grace)
	// Delays from [100ms, 150ms] up to [5s, 7.5s].
	bo := backoff.Backoff{Initial: 150 * time.Millisecond, Max: 7500 * time.Millisecond, Jitter: 1.0 / 3}
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fatal := connectFailure(cfg, err); fatal != nil {
			return nil, fatal
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("cannot reach Postgres at %s:%d after %s (%w); check the host and port in DATABASE_URL and that Postgres is running and accepts connections, or raise -startup-grace",
				cfg.Host, cfg.Port, o.Grace, err)
		}
		wait := min(bo.Next(), time.Until(deadline))
		if o.Logger != nil {
			o.Logger.Warn("cannot connect to Postgres yet; retrying", "host", cfg.Host, "port", cfg.Port, "err", err, "in", wait)
		}
		if backoff.Sleep(ctx, wait) != nil {
			return nil, ctx.Err()
		}
	}
}

// connectFailure returns the start-up error for a connection error that
// waiting cannot fix (credentials, database name), or nil.
func connectFailure(cfg *pgx.ConnConfig, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch pe.Code {
	case "28P01":
		return fmt.Errorf("Postgres at %s:%d refused the password for user %q (%w); fix the password in DATABASE_URL", cfg.Host, cfg.Port, cfg.User, err)
	case "28000":
		return fmt.Errorf("Postgres at %s:%d refused user %q (%w); fix the user in DATABASE_URL, create the role, or allow it in pg_hba.conf", cfg.Host, cfg.Port, cfg.User, err)
	case "3D000":
		return fmt.Errorf("database %q does not exist on %s:%d; create it (CREATE DATABASE) or fix the database name in DATABASE_URL", cfg.Database, cfg.Host, cfg.Port)
	case "42501":
		return fmt.Errorf("Postgres at %s:%d refused the connection (%w); GRANT CONNECT ON DATABASE %s TO %s", cfg.Host, cfg.Port, err,
			pgx.Identifier{cfg.Database}.Sanitize(), pgx.Identifier{cfg.User}.Sanitize())
	}
	return nil
}

// preflightChecks runs the checks on an open connection.
func preflightChecks(ctx context.Context, conn *pgx.Conn, o PreflightOptions) error {
	var (
		walLevel, role, db                 string
		super, repl, canCreate, hasObjects bool
		maxSlots, usedSlots                int
		ownSlot, ownSlotActive             bool
		maxSenders, usedSenders            int
	)
	err := conn.QueryRow(ctx, `
SELECT current_setting('wal_level'), current_user, current_database(),
       r.rolsuper,
       r.rolreplication OR EXISTS (SELECT 1 FROM pg_roles g
           WHERE g.rolname IN ('rds_replication') AND pg_has_role(current_user, g.oid, 'member')),
       has_database_privilege(current_user, current_database(), 'CREATE'),
       EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2) AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'volt'),
       current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active),
       current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_replication)::int
FROM pg_roles r WHERE r.rolname = current_user`, o.Slot, o.Publication).Scan(
		&walLevel, &role, &db, &super, &repl, &canCreate, &hasObjects,
		&maxSlots, &usedSlots, &ownSlot, &ownSlotActive, &maxSenders, &usedSenders)
	if err != nil {
		return fmt.Errorf("read Postgres settings for the start-up checks: %w", err)
	}
	roleIdent, dbIdent := pgx.Identifier{role}.Sanitize(), pgx.Identifier{db}.Sanitize()
	if walLevel != "logical" {
		return fmt.Errorf("wal_level is %s; set wal_level = logical in postgresql.conf (on managed Postgres, enable logical replication in its settings) and restart Postgres", walLevel)
	}
	if !super && !repl {
		return fmt.Errorf("role %s may not replicate; run ALTER ROLE %s WITH REPLICATION as a superuser (on AWS RDS: GRANT rds_replication TO %s), or connect as a role that may", role, roleIdent, roleIdent)
	}
	if !super && !canCreate && !hasObjects {
		return fmt.Errorf("role %s lacks CREATE on database %s, which volt needs to create its publication and schema; run GRANT CREATE ON DATABASE %s TO %s", role, db, dbIdent, roleIdent)
	}
	if !ownSlot && usedSlots >= maxSlots {
		return fmt.Errorf("all %d replication slots are in use (max_replication_slots = %d); drop unused slots (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active) or raise max_replication_slots and restart Postgres", usedSlots, maxSlots)
	}
	if !ownSlotActive && usedSenders >= maxSenders {
		return fmt.Errorf("all %d WAL senders are in use (max_wal_senders = %d); stop other replication clients or raise max_wal_senders and restart Postgres", usedSenders, maxSenders)
	}
	return nil
}
