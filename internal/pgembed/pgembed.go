// Package pgembed runs a PostgreSQL cluster from the system's binaries.
//
// It is the embedded default of `volt serve` (no DATABASE_URL) and the engine
// of the test harness (internal/pgtest): both call Start. The cluster is
// configured for logical replication (wal_level=logical) and listens on
// 127.0.0.1 only. When the current process runs as root, PostgreSQL (which
// refuses to run as root) runs as the unprivileged "postgres" system user.
package pgembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotInstalled is returned by FindBinDir when no PostgreSQL server binaries are found.
var ErrNotInstalled = errors.New("no PostgreSQL server binaries found (looked for initdb and postgres on PATH and in /usr/lib/postgresql/*/bin); install PostgreSQL (Debian/Ubuntu: apt-get install -y postgresql) or set DATABASE_URL to an existing server with wal_level=logical")

// Options configure a cluster.
type Options struct {
	// DataDir holds the cluster. It is created and initialised when empty and
	// reused when it already holds a cluster.
	DataDir string
	// Port to listen on; 0 picks a free port.
	Port int
	// Fsync off trades crash safety of the cluster for speed (tests only).
	NoFsync bool
	// Settings are extra postgresql.conf settings (name → value).
	Settings map[string]string
	// Logger receives progress messages; nil means slog.Default().
	Logger *slog.Logger
	// Output receives PostgreSQL's own log; nil discards it.
	Output io.Writer
}

// Cluster is a running PostgreSQL cluster owned by this process.
type Cluster struct {
	DataDir string
	Port    int
	BinDir  string
	User    string // superuser name

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// FindBinDir returns the directory holding initdb and postgres: PATH first,
// then the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, dir := range matches {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNotInstalled
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// Start initialises (when needed) and starts a cluster, returning once it
// accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	if opts.DataDir == "" {
		return nil, errors.New("pgembed: DataDir is required")
	}
	runAs, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	if err := prepareDir(opts.DataDir, runAs); err != nil {
		return nil, err
	}
	// A postmaster left running in the directory (its volt was killed)
	// is stopped first: it holds the data and the port to reuse.
	if err := stopStale(ctx, opts.DataDir); err != nil {
		return nil, err
	}
	port := opts.Port
	if port == 0 {
		if port, err = stablePort(opts.DataDir); err != nil {
			return nil, err
		}
	}
	c := &Cluster{DataDir: opts.DataDir, Port: port, BinDir: binDir, User: "postgres", done: make(chan struct{})}

	if _, err := os.Stat(filepath.Join(opts.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		log.Info("initialising embedded PostgreSQL", "data_dir", opts.DataDir, "bin_dir", binDir)
		if out, err := c.command(runAs, "initdb", "-D", opts.DataDir, "-U", c.User, "--auth=trust", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb in %s: %w: %s", opts.DataDir, err, strings.TrimSpace(string(out)))
		}
	} else if err != nil {
		return nil, fmt.Errorf("inspect data dir: %w", err)
	}

	args := []string{"-D", opts.DataDir, "-p", strconv.Itoa(port)}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": opts.DataDir,
		"wal_level":               "logical",
		"max_replication_slots":   "100",
		"max_wal_senders":         "100",
		"max_connections":         "300",
		"shared_buffers":          "128MB",
		"log_min_messages":        "warning",
	}
	if opts.NoFsync {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	for _, k := range sortedKeys(settings) {
		args = append(args, "-c", k+"="+settings[k])
	}
	cmd := c.command(runAs, "postgres", args...)
	out := opts.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	go func() { c.err = cmd.Wait(); close(c.done) }()

	if err := c.waitReady(ctx); err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	log.Info("embedded PostgreSQL is running", "port", port, "data_dir", opts.DataDir)
	return c, nil
}

// URL returns a connection string for database db as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Port, db)
}

// Stop shuts the cluster down (fast shutdown) and waits for it to exit.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		_ = c.cmd.Process.Kill()
		<-c.done
		return ctx.Err()
	}
}

// Kill stops the cluster abruptly (SIGKILL to the postmaster), as a crash would.
func (c *Cluster) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Restart stops the cluster and starts it again on the same port and directory.
func (c *Cluster) Restart(ctx context.Context, opts Options) (*Cluster, error) {
	if err := c.Stop(ctx); err != nil {
		return nil, err
	}
	opts.DataDir, opts.Port = c.DataDir, c.Port
	return Start(ctx, opts)
}

// Done is closed when the postmaster exits.
func (c *Cluster) Done() <-chan struct{} { return c.done }

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(pingCtx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("postgres exited during start-up: %v (data dir %s)", c.err, c.DataDir)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections on port %d within 60s", c.Port)
		}
	}
}

func (c *Cluster) command(runAs *user.User, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.BinDir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if runAs != nil {
		uid, _ := strconv.Atoi(runAs.Uid)
		gid, _ := strconv.Atoi(runAs.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		cmd.Env = append(cmd.Env, "HOME="+os.TempDir())
	}
	return cmd
}

// unprivilegedUser returns the user PostgreSQL must run as, or nil when the
// current user is not root.
func unprivilegedUser() (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		if u, err := user.Lookup(name); err == nil {
			return u, nil
		}
	}
	return nil, errors.New("running as root, but there is no 'postgres' or 'nobody' system user to run PostgreSQL as")
}

// prepareDir creates dir (and makes its parents traversable) owned by runAs.
func prepareDir(dir string, runAs *user.User) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(runAs.Uid)
	gid, _ := strconv.Atoi(runAs.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown data dir to %s: %w", runAs.Username, err)
	}
	// The server user must be able to reach the directory.
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("make %s traversable for %s: %w", p, runAs.Username, err)
			}
		}
	}
	return nil
}

// stopStale ends a postmaster left running on dir by a previous process
// (e.g. after that process was killed), so the cluster can be started again.
func stopStale(ctx context.Context, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return nil
	}
	if syscall.Kill(pid, 0) != nil {
		return nil // stale file, postgres removes it itself
	}
	if !servesDir(pid, dir) {
		// The pid was reused by another process, which is not ours to
		// stop; postgres would refuse to start while the file names a
		// live process, so the stale file goes.
		if err := os.Remove(filepath.Join(dir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale postmaster.pid: %w", err)
		}
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGINT)
	for syscall.Kill(pid, 0) == nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// servesDir reports whether pid is a postgres process running in dir. A
// postmaster works in its data directory, so its cwd identifies the
// cluster; the command name alone does not, because after a crash the pid
// in postmaster.pid may belong to another cluster's postmaster or backend
// (pids wrap at 32768 on many systems, and tests start hundreds).
func servesDir(pid int, dir string) bool {
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if !strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres") {
		return false
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return false
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return filepath.Clean(cwd) == abs
}

// stablePort reuses the port the cluster in dir last ran on when it is
// free, so its URL stays the same across restarts; otherwise it picks a
// free one and remembers it.
func stablePort(dir string) (int, error) {
	file := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".port")
	if b, err := os.ReadFile(file); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				l.Close()
				return p, nil
			}
		}
	}
	p, err := freePort()
	if err != nil {
		return 0, err
	}
	_ = os.WriteFile(file, []byte(strconv.Itoa(p)+"\n"), 0o644)
	return p, nil
}

func freePort() (int, error) { return FreePort() }

// FreePort returns a TCP port that is free on every address. It is drawn
// below the kernel's ephemeral range (ip_local_port_range), so that no
// outgoing connection can take it between this check and the listener
// that will use it; a port the kernel hands out (":0") can be, and under
// many parallel tests was.
func FreePort() (int, error) {
	if low := ephemeralLow(); low > 11000 {
		for range 200 {
			p := 10000 + rand.IntN(low-10000)
			if l, err := net.Listen("tcp", fmt.Sprintf(":%d", p)); err == nil {
				l.Close()
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (0 when
// it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
