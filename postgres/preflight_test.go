package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/voltsync/volt/internal/pgembed"
	"github.com/voltsync/volt/internal/pgtest"
)

// pfURLAs returns dbURL with its user (and password) replaced.
func pfURLAs(t *testing.T, dbURL, user, password string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// pfRole creates a login role (cluster-wide, so named after the database)
// with extra attributes, dropped when the test ends, and returns its name
// and URL on dbURL's database.
func pfRole(t *testing.T, dbURL, suffix, attrs string) (string, string) {
	t.Helper()
	u, _ := url.Parse(dbURL)
	name := strings.TrimPrefix(u.Path, "/") + "_" + suffix
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	ident := pgx.Identifier{name}.Sanitize()
	pgtest.Exec(t, dbURL, "CREATE ROLE "+ident+" LOGIN "+attrs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP OWNED BY "+ident)
		_, _ = conn.Exec(ctx, "DROP ROLE "+ident)
	})
	return name, pfURLAs(t, dbURL, name, "")
}

// pfCluster starts a private cluster with extra settings, stopped when the
// test ends; dir is a directory the server can read files from.
func pfCluster(t *testing.T, settings map[string]string, files map[string]string) *pgembed.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "volt-preflight-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		for k, v := range settings {
			settings[k] = strings.ReplaceAll(v, "{"+name+"}", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir + "/data", NoFsync: true, Settings: settings, Logger: replQuietLogger()})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func pfRun(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Preflight(ctx, PreflightOptions{URL: url, Slot: "volt_slot_pf", Publication: "volt_publication_pf"})
}

// pfExpect fails unless err is a start-up error containing each of want.
func pfExpect(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Preflight succeeded; want an error naming %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("Preflight error %q does not contain %q", err, w)
		}
	}
}

func TestPreflightPassesForSuperuser(t *testing.T) {
	if err := pfRun(pgtest.NewDB(t)); err != nil {
		t.Fatalf("Preflight as superuser: %v", err)
	}
}

func TestPreflightRoleWithoutReplication(t *testing.T) {
	db := pgtest.NewDB(t)
	name, u := pfRole(t, db, "norepl", "")
	pfExpect(t, pfRun(u), "role "+name+" may not replicate", "ALTER ROLE "+pgx.Identifier{name}.Sanitize()+" WITH REPLICATION")
}

func TestPreflightRoleWithoutCreate(t *testing.T) {
	db := pgtest.NewDB(t)
	name, u := pfRole(t, db, "nocreate", "REPLICATION")
	dbName := strings.TrimPrefix(mustParseURL(t, db).Path, "/")
	pfExpect(t, pfRun(u), "lacks CREATE on database "+dbName,
		"GRANT CREATE ON DATABASE "+pgx.Identifier{dbName}.Sanitize()+" TO "+pgx.Identifier{name}.Sanitize())
	// With the privilege the role passes.
	pgtest.Exec(t, db, "GRANT CREATE ON DATABASE "+pgx.Identifier{dbName}.Sanitize()+" TO "+pgx.Identifier{name}.Sanitize())
	if err := pfRun(u); err != nil {
		t.Fatalf("Preflight with REPLICATION and CREATE: %v", err)
	}
}

// A role that replicates through membership in AWS RDS's rds_replication
// (a role without the REPLICATION attribute there) passes.
func TestPreflightRDSReplicationMember(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') THEN CREATE ROLE rds_replication; END IF; END $$`)
	name, u := pfRole(t, db, "rds", "")
	dbName := strings.TrimPrefix(mustParseURL(t, db).Path, "/")
	pgtest.Exec(t, db, "GRANT rds_replication TO "+pgx.Identifier{name}.Sanitize(),
		"GRANT CREATE ON DATABASE "+pgx.Identifier{dbName}.Sanitize()+" TO "+pgx.Identifier{name}.Sanitize())
	if err := pfRun(u); err != nil {
		t.Fatalf("Preflight as a member of rds_replication: %v", err)
	}
}

func TestPreflightUnknownRoleAndDatabase(t *testing.T) {
	db := pgtest.NewDB(t)
	start := time.Now()
	pfExpect(t, pfRun(pfURLAs(t, db, "no_such_role_pf", "")), `refused user "no_such_role_pf"`, "fix the user in DATABASE_URL")
	u := mustParseURL(t, db)
	u.Path = "/no_such_database_pf"
	pfExpect(t, pfRun(u.String()), `database "no_such_database_pf" does not exist`, "CREATE DATABASE")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the two failures took %s; they must not be retried", d)
	}
}

func TestPreflightUnreachableHostAfterGrace(t *testing.T) {
	port, err := pgembed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const grace = 1500 * time.Millisecond
	start := time.Now()
	err = Preflight(context.Background(), PreflightOptions{
		URL: fmt.Sprintf("postgres://nobody@127.0.0.1:%d/db?sslmode=disable&connect_timeout=2", port), Grace: grace,
	})
	took := time.Since(start)
	pfExpect(t, err, fmt.Sprintf("cannot reach Postgres at 127.0.0.1:%d after 1.5s", port), "-startup-grace")
	if took < grace || took > grace+10*time.Second {
		t.Fatalf("Preflight gave up after %s; want just after the %s grace", took, grace)
	}
}

// A server that comes up within the grace period is waited for: the
// attempt that reaches it gets the server's own answer (here, that the
// role does not exist), not "cannot reach".
func TestPreflightWaitsForHostWithinGrace(t *testing.T) {
	port, err := pgembed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Preflight(context.Background(), PreflightOptions{
			URL: fmt.Sprintf("postgres://pf_late@127.0.0.1:%d/postgres?sslmode=disable", port), Grace: 2 * time.Minute,
		})
	}()
	dir, err := os.MkdirTemp("", "volt-preflight-late-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir + "/data", Port: port, NoFsync: true, Logger: replQuietLogger()})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	pfExpect(t, <-done, `refused user "pf_late"`)
}

func TestPreflightWalLevelReplica(t *testing.T) {
	c := pfCluster(t, map[string]string{"wal_level": "replica"}, nil)
	pfExpect(t, pfRun(c.URL("postgres")), "wal_level is replica; set wal_level = logical in postgresql.conf")
}

// Slots and WAL senders exhausted, and a wrong password, on one cluster
// with one slot, one sender and password authentication for one role.
func TestPreflightSlotsSendersPassword(t *testing.T) {
	c := pfCluster(t, map[string]string{
		"max_replication_slots": "1", "max_wal_senders": "1", "hba_file": "{hba}", "password_encryption": "scram-sha-256",
	}, map[string]string{"hba": "local all all trust\nhost all pf_pw 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"})
	su := c.URL("postgres")
	ctx := context.Background()

	pgtest.Exec(t, su, `CREATE ROLE pf_pw LOGIN REPLICATION PASSWORD 'right'`, `GRANT CREATE ON DATABASE postgres TO pf_pw`)
	start := time.Now()
	pfExpect(t, pfRun(pfURLAs(t, su, "pf_pw", "wrong")), `refused the password for user "pf_pw"`, "fix the password in DATABASE_URL")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a wrong password took %s to fail; it must not be retried", d)
	}
	if err := pfRun(pfURLAs(t, su, "pf_pw", "right")); err != nil {
		t.Fatalf("Preflight with the right password: %v", err)
	}

	pgtest.Exec(t, su, `SELECT pg_create_logical_replication_slot('other_slot', 'pgoutput')`)
	pfExpect(t, pfRun(su), "all 1 replication slots are in use (max_replication_slots = 1)", "raise max_replication_slots")
	// volt's own slot counts as free.
	if err := Preflight(ctx, PreflightOptions{URL: su, Slot: "other_slot"}); err != nil {
		t.Fatalf("Preflight when volt's own slot takes the last one: %v", err)
	}
	pgtest.Exec(t, su, `SELECT pg_drop_replication_slot('other_slot')`)

	// A replication connection takes the only WAL sender.
	rcfg, err := pgconn.ParseConfig(su)
	if err != nil {
		t.Fatal(err)
	}
	rcfg.RuntimeParams["replication"] = "database"
	rconn, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close(ctx)
	pfExpect(t, pfRun(su), "all 1 WAL senders are in use (max_wal_senders = 1)", "raise max_wal_senders")
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// AddTable on a table volt's role does not own fails with 42501 and a
// message naming the cause and the fix; once the role owns it, it works.
func TestPublisherTableNotOwned(t *testing.T) {
	db := pgtest.NewDB(t)
	dbName := strings.TrimPrefix(mustParseURL(t, db).Path, "/")
	name, u := pfRole(t, db, "notowner", "REPLICATION")
	role := pgx.Identifier{name}.Sanitize()
	pgtest.Exec(t, db, "CREATE TABLE items (id int PRIMARY KEY)",
		"GRANT CREATE ON DATABASE "+pgx.Identifier{dbName}.Sanitize()+" TO "+role,
		"GRANT SELECT ON items TO "+role)
	ctx := context.Background()
	conn := replConnect(t, u)
	p := NewPublisher(conn, "pf_pub")
	if _, err := p.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	err := p.AddTable(ctx, "public", "items")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("AddTable on a table owned by another role: %v; want SQLSTATE 42501", err)
	}
	for _, want := range []string{"volt's role " + name + " does not own table public.items", "ALTER TABLE public.items OWNER TO " + name} {
		if !strings.Contains(pe.Message, want) {
			t.Fatalf("message %q does not contain %q", pe.Message, want)
		}
	}
	if !IsNotOwner(err) {
		t.Fatalf("IsNotOwner(%v) = false", err)
	}
	if member, replident := pubState(t, replConnect(t, db), "pf_pub", "public", "items"); member || replident == "f" {
		t.Fatalf("after the failure: member %v, replica identity %s; want nothing changed", member, replident)
	}
	pgtest.Exec(t, db, "ALTER TABLE items OWNER TO "+role)
	if err := p.AddTable(ctx, "public", "items"); err != nil {
		t.Fatalf("AddTable once the role owns the table: %v", err)
	}
}

// A host name that does not resolve is retried like a refused port, then
// named in the error.
func TestPreflightUnknownHostAfterGrace(t *testing.T) {
	err := Preflight(context.Background(), PreflightOptions{
		URL: "postgres://nobody@volt-no-such-host.invalid:5432/db?sslmode=disable&connect_timeout=2", Grace: 300 * time.Millisecond,
	})
	pfExpect(t, err, "cannot reach Postgres at volt-no-such-host.invalid:5432 after 300ms", "check the host and port in DATABASE_URL")
}

// A publication created by another role: AddTable names the publication
// and the fix.
func TestPublisherPublicationNotOwned(t *testing.T) {
	db := pgtest.NewDB(t)
	name, u := pfRole(t, db, "pubowner", "REPLICATION")
	pgtest.Exec(t, db, "CREATE PUBLICATION pf_pub2", "CREATE TABLE items (id int PRIMARY KEY)",
		"ALTER TABLE items OWNER TO "+pgx.Identifier{name}.Sanitize())
	ctx := context.Background()
	err := NewPublisher(replConnect(t, u), "pf_pub2").AddTable(ctx, "public", "items")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !IsNotOwner(err) {
		t.Fatalf("AddTable to another role's publication: %v; want SQLSTATE 42501", err)
	}
	for _, want := range []string{"volt's role " + name + " does not own publication pf_pub2", "ALTER PUBLICATION pf_pub2 OWNER TO " + name} {
		if !strings.Contains(pe.Message, want) {
			t.Fatalf("message %q does not contain %q", pe.Message, want)
		}
	}
}
