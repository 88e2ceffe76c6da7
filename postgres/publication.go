package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes the publication and replication code reacts to.
const (
	replStateDuplicateObject       = "42710"
	replStateUniqueViolation       = "23505"
	replStateUndefinedObject       = "42704"
	replStateUndefinedTable        = "42P01"
	replStateInsufficientPrivilege = "42501"
	replStateDeadlockDetected      = "40P01"
	replStateObjectInUse           = "55006"
)

// publishedOps is what the publication must publish (protocol §13.1).
const publishedOps = "insert, update, delete, truncate"

// Publisher manages the publication the Reader streams from: it creates it
// and adds tables to it, making their REPLICA IDENTITY FULL so that updates
// and deletes carry the complete old row. Its methods are safe for
// concurrent use (they are serialised) and, across processes, for
// concurrent calls for the same table.
type Publisher struct {
	name string
	db   interface {
		Begin(ctx context.Context) (pgx.Tx, error)
	}
	mu sync.Mutex
}

// NewPublisher returns a Publisher for the publication called name, working
// through db (a *pgx.Conn or *pgxpool.Pool on a normal, non-replication
// connection; the role must own the tables it publishes).
func NewPublisher(db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, name string) *Publisher {
	if name == "" {
		name = DefaultPublication
	}
	return &Publisher{name: name, db: db}
}

// Name returns the publication's name.
func (p *Publisher) Name() string { return p.name }

// Ensure creates the publication, with no tables, publishing inserts,
// updates, deletes and truncates. It reports whether it was created now; an
// existing publication is kept, and made to publish all four operations if
// it does not.
func (p *Publisher) Ensure(ctx context.Context) (created bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ident := pgx.Identifier{p.name}.Sanitize()
	createErr := p.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CREATE PUBLICATION "+ident+" WITH (publish = '"+publishedOps+"')")
		return err
	})
	switch replPgCode(createErr) {
	case "":
		if createErr != nil {
			return false, fmt.Errorf("create publication %s: %w", ident, createErr)
		}
		return true, nil
	case replStateDuplicateObject, replStateUniqueViolation, replStateInsufficientPrivilege:
		// It exists (or we may not create it): check it publishes everything.
	default:
		return false, fmt.Errorf("create publication %s: %w", ident, createErr)
	}
	if err := p.inTx(ctx, func(tx pgx.Tx) error { return p.checkOps(ctx, tx, createErr) }); err != nil {
		return false, err
	}
	return false, nil
}

// checkOps makes an existing publication publish all four operations.
// createErr is why it could not be created.
func (p *Publisher) checkOps(ctx context.Context, tx pgx.Tx, createErr error) error {
	ident := pgx.Identifier{p.name}.Sanitize()
	var ins, upd, del, trunc bool
	err := tx.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`,
		p.name).Scan(&ins, &upd, &del, &trunc)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("create publication %s: %w", ident, createErr)
	}
	if err != nil {
		return fmt.Errorf("read publication %s: %w", ident, err)
	}
	if ins && upd && del && trunc {
		return nil
	}
	if _, err := tx.Exec(ctx, "ALTER PUBLICATION "+ident+" SET (publish = '"+publishedOps+"')"); err != nil {
		return fmt.Errorf("publication %s must publish %s: %w", ident, publishedOps, err)
	}
	return nil
}

// AddTable adds schema.table to the publication (a table already in it is
// fine) and sets its REPLICA IDENTITY to FULL unless it already is, in one
// transaction. Concurrent calls for the same table, from any process, are
// serialised by a transaction-level advisory lock.
func (p *Publisher) AddTable(ctx context.Context, schema, table string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	qualified := pgx.Identifier{schema, table}.Sanitize()
	var err error
	added := false
	for attempt := 0; attempt < 3; attempt++ {
		err = p.inTx(ctx, func(tx pgx.Tx) (err error) {
			added, err = p.addTable(ctx, tx, qualified)
			return err
		})
		if replPgCode(err) != replStateDeadlockDetected {
			break
		}
	}
	if err == nil && added {
		err = p.awaitEarlierWriters(ctx, qualified)
	}
	if err != nil {
		return fmt.Errorf("add %s to publication %s: %w", qualified, pgx.Identifier{p.name}.Sanitize(), err)
	}
	return nil
}

// awaitEarlierWriters returns once every transaction that held a write
// lock on the table just after it was added to the publication has ended.
//
// Logical decoding judges a change by the publication as it was when the
// change was made, so a transaction that wrote the table before ALTER
// PUBLICATION … ADD TABLE committed, and commits after it, reaches the
// stream without those earlier changes. ADD TABLE does not wait for such
// writers (its lock lets them run; only a REPLICA IDENTITY change waits),
// and a shape snapshot taken while one is still running does not hold it
// either: its first changes would be lost to the shape for good. Waiting
// for them, as CREATE INDEX CONCURRENTLY waits for older writers, puts
// every transaction that wrote before the table was published into the
// snapshots taken after AddTable returns. New writers are not held up.
func (p *Publisher) awaitEarlierWriters(ctx context.Context, qualified string) error {
	vxids, err := p.texts(ctx, `
SELECT DISTINCT virtualtransaction FROM pg_locks
WHERE locktype = 'relation' AND granted AND pid IS DISTINCT FROM pg_backend_pid()
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND relation = $1::text::regclass
  AND mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`, qualified)
	if err != nil {
		return fmt.Errorf("list the table's writers: %w", err)
	}
	for wait := time.Millisecond; len(vxids) > 0; wait = min(2*wait, 100*time.Millisecond) {
		vxids, err = p.texts(ctx, `SELECT virtualxid FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY($1)`, vxids)
		if err != nil {
			return fmt.Errorf("wait for the table's earlier writers: %w", err)
		}
		if len(vxids) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the table's earlier writers (%s): %w", strings.Join(vxids, ", "), ctx.Err())
		case <-time.After(wait):
		}
	}
	return nil
}

// texts runs a query of one text column in a transaction of its own.
func (p *Publisher) texts(ctx context.Context, sql string, args ...any) (out []string, err error) {
	err = p.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return out, err
}

// addTable adds the table to the publication and makes its replica
// identity full, as needed; added reports whether it was not in the
// publication before.
func (p *Publisher) addTable(ctx context.Context, tx pgx.Tx, qualified string) (added bool, err error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('volt_publication:' || $1))`, qualified); err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	var replident string
	var member bool
	var names ownerNames
	err = tx.QueryRow(ctx, `
SELECT c.relreplident::text,
       EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
               WHERE p.pubname = $2 AND r.prrelid = c.oid),
       quote_ident(current_user), quote_ident(pg_get_userbyid(c.relowner)),
       quote_ident(n.nspname) || '.' || quote_ident(c.relname), quote_ident($2)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::text::regclass`, qualified, p.name).Scan(&replident, &member, &names.role, &names.owner, &names.table, &names.pub)
	if err != nil {
		return false, fmt.Errorf("inspect table: %w", err)
	}
	if !member {
		if err := p.addMember(ctx, tx, qualified); err != nil {
			return false, notOwner(err, names)
		}
	}
	if replident != "f" {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+qualified+" REPLICA IDENTITY FULL"); err != nil {
			return false, notOwner(fmt.Errorf("set replica identity full: %w", err), names)
		}
	}
	return !member, nil
}

// notOwner rewrites an insufficient_privilege error of AddTable (volt's
// role does not own the table or the publication) into one whose message
// names the cause and the fix; the SQLSTATE stays 42501, so the request
// that caused it is answered as the client's (shapecache.ClientError)
// instead of being retried. Other errors are returned as they are.
func notOwner(err error, n ownerNames) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != replStateInsufficientPrivilege {
		return err
	}
	rewritten := *pe
	if strings.Contains(pe.Message, "publication") {
		rewritten.Message = fmt.Sprintf("volt's role %s does not own publication %s, so it cannot add table %s to it: run ALTER PUBLICATION %s OWNER TO %s",
			n.role, n.pub, n.table, n.pub, n.role)
	} else {
		rewritten.Message = fmt.Sprintf("volt's role %s does not own table %s (its owner is %s), so it cannot set REPLICA IDENTITY FULL and add it to publication %s: run ALTER TABLE %s OWNER TO %s, or have %s run ALTER TABLE %s REPLICA IDENTITY FULL and ALTER PUBLICATION %s ADD TABLE %s",
			n.role, n.table, n.owner, n.pub, n.table, n.role, n.owner, n.table, n.pub, n.table)
	}
	rewritten.Detail, rewritten.Hint = pe.Message, ""
	return &notOwnerError{pg: &rewritten, cause: err}
}

// ownerNames are the names notOwner's message quotes, as SQL identifiers
// (quote_ident: quoted only when needed).
type ownerNames struct{ role, owner, table, pub string }

// notOwnerError is AddTable's error when volt's role may not publish a
// table: Unwrap yields the rewritten *pgconn.PgError (for errors.As), and
// the original error stays in Error's text.
type notOwnerError struct {
	pg    *pgconn.PgError
	cause error
}

func (e *notOwnerError) Error() string { return e.pg.Message + " (" + e.cause.Error() + ")" }
func (e *notOwnerError) Unwrap() error { return e.pg }

// IsNotOwner reports whether err is AddTable's error for a table or
// publication volt's role does not own.
func IsNotOwner(err error) bool {
	var e *notOwnerError
	return errors.As(err, &e)
}

// addMember runs ALTER PUBLICATION … ADD TABLE in a savepoint, so that
// "already a member" does not abort the transaction.
func (p *Publisher) addMember(ctx context.Context, tx pgx.Tx, qualified string) error {
	sub, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	_, err = sub.Exec(ctx, "ALTER PUBLICATION "+pgx.Identifier{p.name}.Sanitize()+" ADD TABLE "+qualified)
	switch replPgCode(err) {
	case "":
		if err != nil {
			_ = sub.Rollback(ctx)
			return fmt.Errorf("alter publication: %w", err)
		}
		return sub.Commit(ctx)
	case replStateDuplicateObject, replStateUniqueViolation:
		return sub.Rollback(ctx)
	}
	_ = sub.Rollback(ctx)
	return fmt.Errorf("alter publication: %w", err)
}

// RemoveTable drops schema.table from the publication; a table that is not
// in it (or no longer exists) is fine. Its replica identity is left as is.
func (p *Publisher) RemoveTable(ctx context.Context, schema, table string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	qualified := pgx.Identifier{schema, table}.Sanitize()
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "ALTER PUBLICATION "+pgx.Identifier{p.name}.Sanitize()+" DROP TABLE "+qualified)
		return err
	})
	switch replPgCode(err) {
	case replStateUndefinedObject, replStateUndefinedTable:
		return nil
	}
	if err != nil {
		return fmt.Errorf("drop %s from publication %s: %w", qualified, pgx.Identifier{p.name}.Sanitize(), err)
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil.
func (p *Publisher) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := p.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// replPgCode returns the SQLSTATE of a Postgres error in err's chain, or "".
func replPgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
