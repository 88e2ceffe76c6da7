package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt/internal/pgembed"
)

// longPollTimeout is the server's long-poll hold; longer than any wait in
// the scenarios, so a poll only returns early when data arrives.
const longPollTimeout = 20 * time.Second

// Env is a running Postgres plus a running volt serve child.
type Env struct {
	cfg     Config
	workDir string
	ownDir  bool
	cluster *pgembed.Cluster
	dbURL   string
	Pool    *pgxpool.Pool
	URL     string // http://127.0.0.1:<port>
	server  *exec.Cmd
	exited  chan struct{}
	logPath string
	gen     int // servers started so far; each has its own storage and slot
	// extraArgs are appended to ServerCmd (a scenario's own server flags).
	extraArgs []string
	// pastServerCPU is the CPU time of the servers already stopped.
	pastServerCPU time.Duration
	plots         []*Plot
}

// StartEnv starts Postgres (fsync on) and volt serve against it.
func StartEnv(ctx context.Context, cfg Config) (_ *Env, err error) {
	env := &Env{cfg: cfg, workDir: cfg.WorkDir}
	if env.workDir == "" {
		if env.workDir, err = os.MkdirTemp("", "volt-bench-"); err != nil {
			return nil, fmt.Errorf("create work dir: %w", err)
		}
		env.ownDir = true
	}
	defer func() {
		if err != nil {
			env.Close()
		}
	}()
	if err = env.startPostgres(ctx); err != nil {
		return nil, err
	}
	if err = env.startServer(ctx); err != nil {
		return nil, err
	}
	return env, nil
}

func (e *Env) progress(format string, args ...any) {
	if e.cfg.Progress != nil {
		fmt.Fprintf(e.cfg.Progress, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

func (e *Env) startPostgres(ctx context.Context) error {
	e.progress("starting Postgres in %s", e.workDir)
	c, err := pgembed.Start(ctx, pgembed.Options{
		DataDir: filepath.Join(e.workDir, "pg"),
		// The LISTEN/NOTIFY fan-out baseline holds one backend per listener.
		Settings: map[string]string{"max_connections": strconv.Itoa(maxNotifyListeners + 200)},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	e.cluster, e.dbURL = c, c.URL("postgres")
	if e.Pool, err = pgxpool.New(ctx, e.dbURL); err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	return nil
}

func (e *Env) startServer(ctx context.Context) error {
	e.gen++
	return e.launch(ctx)
}

// launch starts volt serve on storage generation e.gen and waits until
// /v1/health says active.
func (e *Env) launch(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	e.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	e.logPath = filepath.Join(e.workDir, fmt.Sprintf("volt-%d.log", e.gen))
	logFile, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	args := append(append([]string{}, e.cfg.ServerCmd[1:]...), e.extraArgs...)
	cmd := exec.Command(e.cfg.ServerCmd[0], args...)
	cmd.Env = append(inheritedEnv(), e.serverEnv(port)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start volt serve: %w", err)
	}
	e.server, e.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(e.exited) }()
	e.progress("volt serve (pid %d) on %s", cmd.Process.Pid, e.URL)
	return e.waitHealthy(ctx)
}

func (e *Env) serverEnv(port int) []string {
	return []string{
		"DATABASE_URL=" + e.dbURL,
		"VOLT_PORT=" + strconv.Itoa(port),
		"VOLT_STORAGE_DIR=" + e.storageDir(),
		"VOLT_LONG_POLL_TIMEOUT=" + longPollTimeout.String(),
		"VOLT_REPLICATION_STREAM_ID=" + e.streamID(),
		"VOLT_LOG_LEVEL=warn",
		"VOLT_INSECURE_WRITES=true", // S10 writes without rules; the bench is loopback-only
		// Every bench client connects from 127.0.0.1: no per-address caps,
		// and room for the 100,000-shape scenarios beyond -max-shapes' default.
		"VOLT_MAX_CONNS_PER_IP=0",
		"VOLT_MAX_SHAPES_PER_PRINCIPAL=0",
		"VOLT_MAX_SHAPES=0",
	}
}

// inheritedEnv is this process's environment minus volt's and Electric's
// settings, so a VOLT_SECRET or DATABASE_URL in the shell cannot change what
// is measured.
func inheritedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VOLT_") && !strings.HasPrefix(kv, "ELECTRIC_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	return env
}

func (e *Env) storageDir() string { return filepath.Join(e.workDir, fmt.Sprintf("volt-%d", e.gen)) }

func (e *Env) streamID() string { return fmt.Sprintf("bench%d", e.gen) }

// Settings describes how Postgres and volt run.
func (e *Env) Settings() []string {
	s := []string{fmt.Sprintf("Postgres: pgembed defaults (fsync on, synchronous_commit on, shared_buffers 128MB, wal_level logical, wal_sender_timeout 60s) except max_connections %d (for the LISTEN/NOTIFY fan-out's listeners), 127.0.0.1", maxNotifyListeners+200)}
	env := e.serverEnv(0)
	for _, kv := range env[2:] { // no DATABASE_URL, no port
		if !strings.HasPrefix(kv, "VOLT_STORAGE_DIR") && !strings.HasPrefix(kv, "VOLT_REPLICATION_STREAM_ID") {
			s = append(s, "volt serve: "+kv)
		}
	}
	return append(s,
		"volt serve runs as a child process; the load clients run in the bench process on the same cores",
		"each scenario gets a fresh volt serve (new storage dir, replication slot and publication) against the same Postgres")
}

// RestartServer stops volt, drops its slot and publication, and starts a
// fresh one with empty storage, so scenarios do not inherit each other's shapes.
func (e *Env) RestartServer(ctx context.Context) error {
	if err := e.dropServer(ctx); err != nil {
		return err
	}
	return e.startServer(ctx)
}

// restartSameStorage stops volt and starts it again on the same storage,
// slot and publication; it returns how long the stop took.
func (e *Env) restartSameStorage(ctx context.Context) (stopped time.Duration, err error) {
	start := time.Now()
	e.stopServer()
	stopped = time.Since(start)
	return stopped, e.launch(ctx)
}

func (e *Env) slotName() string { return "volt_slot_" + e.streamID() }

// dropServer stops volt and drops its slot and publication.
func (e *Env) dropServer(ctx context.Context) error {
	e.stopServer()
	id := e.streamID()
	if err := e.dropSlot(ctx, "volt_slot_"+id); err != nil {
		return err
	}
	if _, err := e.Pool.Exec(ctx, `DROP PUBLICATION IF EXISTS volt_publication_`+id); err != nil {
		return fmt.Errorf("drop publication of %s: %w", id, err)
	}
	return nil
}

// dropSlot drops a replication slot, waiting for the walsender of the
// stopped server to let go of it.
func (e *Env) dropSlot(ctx context.Context, slot string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.Pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return fmt.Errorf("drop slot %s: %w", slot, err)
		}
		time.Sleep(50 * time.Millisecond) // 55006: the slot is still active
	}
}

func (e *Env) stopServer() {
	if e.server == nil {
		return
	}
	start := time.Now()
	defer func() { e.progress("volt serve stopped in %s", time.Since(start).Round(time.Millisecond)) }()
	if c, err := processCPU(e.server.Process.Pid); err == nil {
		e.pastServerCPU += c // so phases that restart volt still add up
	}
	_ = e.server.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(20 * time.Second):
		_ = e.server.Process.Kill()
		<-e.exited
	}
	e.server = nil
}

func (e *Env) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-e.exited:
			return fmt.Errorf("volt serve exited during start-up:\n%s", e.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := http.Get(e.URL + "/v1/health"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"active"`)) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("volt serve did not become healthy within 60s:\n%s", e.logTail())
}

// logTail is the end of the server's log, for error messages.
func (e *Env) logTail() string {
	b, _ := os.ReadFile(e.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Alive reports an error when the server has exited.
func (e *Env) Alive() error {
	select {
	case <-e.exited:
		return fmt.Errorf("volt serve exited:\n%s", e.logTail())
	default:
		return nil
	}
}

// serverUsage is the server's resident memory and open files at one moment.
type serverUsage struct {
	rss int64
	fds int
}

func (e *Env) usage() (serverUsage, error) {
	rss, _, err := e.ServerMemory()
	if err != nil {
		return serverUsage{}, err
	}
	fds, err := e.ServerFDs()
	return serverUsage{rss: rss, fds: fds}, err
}

// ServerFDs counts the server's open file descriptors.
func (e *Env) ServerFDs() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", e.server.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("list server fds: %w", err)
	}
	return len(ents), nil
}

// ServerMemory returns the server's current and peak resident set sizes in bytes.
func (e *Env) ServerMemory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.server.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read server status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in the server's /proc status")
	}
	return rss, peak, nil
}

// Close stops volt, then Postgres, and removes a temporary work dir.
func (e *Env) Close() {
	e.stopServer()
	if e.Pool != nil {
		e.Pool.Close()
	}
	if e.cluster != nil {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = e.cluster.Stop(ctx)
		cancel()
		e.progress("Postgres stopped in %s", time.Since(start).Round(time.Millisecond))
	}
	if e.ownDir {
		_ = os.RemoveAll(e.workDir)
	}
}

func freePort() (int, error) { return pgembed.FreePort() }

// raiseFileLimit lifts the soft open-files limit to the hard one, for this
// process and the server it starts (fan-out needs one socket per client on
// each side). The Go runtime raises its own limit at start but restores the
// original for child processes unless Setrlimit is called, so it always is.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("get open-files limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise open-files limit to %d: %w", lim.Max, err)
	}
	return nil
}

// fileLimit is the soft open-files limit.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}
