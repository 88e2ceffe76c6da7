package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgembed"
	"github.com/voltsync/volt/internal/pgtest"
)

// Issue 17 item 4: permission and configuration problems stop volt serve at
// start with one sentence naming the fix, and a table volt's role does not
// own gets a 4xx naming the cause instead of 503 forever.

// opsfServe runs volt serve against dbURL, expecting it to exit on its
// own within limit; it returns the exit code, stderr and how long it ran.
func opsfServe(t *testing.T, dbURL string, limit time.Duration, env ...string) (int, string, time.Duration) {
	t.Helper()
	cmd := exec.Command(voltBin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "VOLT_PORT="+strconv.Itoa(freePort(t)),
		"VOLT_STORAGE_DIR="+t.TempDir(), "VOLT_REPLICATION_STREAM_ID=opsf")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		took := time.Since(start)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stderr.String(), took
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("volt serve still running after %s; want it to exit with an error. Its log:\n%s", limit, stderr.String())
		return 0, "", 0
	}
}

// opsfExpectExit fails unless volt exited 1 and its last line (the error
// main prints) contains each of want.
func opsfExpectExit(t *testing.T, code int, stderr string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.HasPrefix(last, "volt: ") {
		t.Fatalf("exit code %d, last line %q; want 1 and the start-up error. Log:\n%s", code, last, stderr)
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Fatalf("start-up error %q does not contain %q", last, w)
		}
	}
}

// opsfRole creates a login role named after the test's database, dropped
// (with what it owns there) when the test ends, and returns its name and a
// URL connecting as it.
func opsfRole(t *testing.T, dbURL, suffix, attrs string) (string, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/") + "_" + suffix
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	ident := pgx.Identifier{name}.Sanitize()
	pgtest.Exec(t, dbURL, "CREATE ROLE "+ident+" LOGIN "+attrs,
		"GRANT CREATE ON DATABASE "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" TO "+ident)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, dbURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP OWNED BY "+ident)
			_, _ = conn.Exec(ctx, "DROP ROLE "+ident)
			_ = conn.Close(ctx)
		}
	})
	u.User = url.User(name)
	return name, u.String()
}

func TestOpsStartRoleWithoutReplication(t *testing.T) {
	db := pgtest.NewDB(t)
	name, roleURL := opsfRole(t, db, "norepl", "")
	code, stderr, took := opsfServe(t, roleURL, 30*time.Second)
	opsfExpectExit(t, code, stderr, "role "+name+" may not replicate", "ALTER ROLE "+pgx.Identifier{name}.Sanitize()+" WITH REPLICATION")
	if took > 15*time.Second {
		t.Fatalf("volt took %s to refuse a role without REPLICATION; want at once", took)
	}
}

func TestOpsStartWrongPassword(t *testing.T) {
	dir, err := os.MkdirTemp("", "volt-opsf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	hba := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\nhost all opsf_pw 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir + "/data", NoFsync: true, Settings: map[string]string{"hba_file": hba}})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	pgtest.Exec(t, c.URL("postgres"), `CREATE ROLE opsf_pw LOGIN REPLICATION PASSWORD 'right'`)
	wrong := fmt.Sprintf("postgres://opsf_pw:wrong@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	code, stderr, took := opsfServe(t, wrong, 30*time.Second)
	opsfExpectExit(t, code, stderr, `refused the password for user "opsf_pw"`, "fix the password in DATABASE_URL")
	if took > 15*time.Second {
		t.Fatalf("volt took %s to refuse a wrong password; want at once", took)
	}
}

func TestOpsStartUnreachableAfterGrace(t *testing.T) {
	port := freePort(t) // nothing listens there
	dbURL := fmt.Sprintf("postgres://volt@127.0.0.1:%d/volt?sslmode=disable", port)
	code, stderr, took := opsfServe(t, dbURL, 40*time.Second, "VOLT_STARTUP_GRACE=2s")
	opsfExpectExit(t, code, stderr, fmt.Sprintf("cannot reach Postgres at 127.0.0.1:%d after 2s", port), "-startup-grace")
	if took < 2*time.Second {
		t.Fatalf("volt gave up after %s, before the 2s grace", took)
	}
	if !strings.Contains(stderr, "cannot connect to Postgres yet; retrying") {
		t.Fatalf("volt did not retry within the grace. Log:\n%s", stderr)
	}
}

// A table volt's role does not own: the shape request gets a 400 naming
// the cause and the fix (not 503 "please retry", which clients retry
// forever), the failed shape is not kept (asking again gets the same 400),
// and once the role owns the table the same request syncs.
func TestOpsShapeOnTableNotOwned(t *testing.T) {
	db := pgtest.NewDB(t)
	name, roleURL := opsfRole(t, db, "volt", "REPLICATION")
	pgtest.Exec(t, db, "CREATE TABLE items (id int PRIMARY KEY, title text)",
		"INSERT INTO items VALUES (1, 'a')",
		"GRANT SELECT ON items TO "+pgx.Identifier{name}.Sanitize())
	v := startVolt(t, roleURL)
	for i := 0; i < 2; i++ {
		r := get(t, v.shapeURL("table", "items", "offset", "-1"))
		if r.Status != 400 {
			t.Fatalf("request %d for a table volt's role does not own: status %d %s; want 400", i+1, r.Status, r.Body)
		}
		for _, want := range []string{"volt's role " + name + " does not own table public.items", "ALTER TABLE public.items OWNER TO " + name} {
			if !bytes.Contains(r.Body, []byte(want)) {
				t.Fatalf("request %d: body %s does not contain %q", i+1, r.Body, want)
			}
		}
	}
	pgtest.Exec(t, db, "ALTER TABLE items OWNER TO "+pgx.Identifier{name}.Sanitize())
	r := get(t, v.shapeURL("table", "items", "offset", "-1"))
	if r.Status != 200 || len(r.Msgs) == 0 {
		t.Fatalf("after ALTER TABLE … OWNER TO volt's role: status %d %s; want the rows", r.Status, r.Body)
	}
}
