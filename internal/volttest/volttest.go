// Package volttest runs the volt binary for tests: it builds cmd/volt once
// per test binary and starts `volt serve` processes against test databases,
// waiting for /v1/health to report active. Tests that drive volt over HTTP
// (e2e, the Go client, the local store) share it.
package volttest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgembed"
)

// Build compiles cmd/volt into a temporary directory and returns the
// binary's path and a function that removes it. Call it from TestMain.
func Build() (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "volt-test-bin-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "volt")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/voltsync/volt/cmd/volt").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build volt: %v\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// MustBuild is Build for TestMain: it exits the process on failure.
func MustBuild() (bin string, cleanup func()) {
	bin, cleanup, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return bin, cleanup
}

// Server is a running `volt serve` process.
type Server struct {
	URL     string
	Port    int
	DBURL   string // "" runs the embedded default
	Storage string

	t      testing.TB
	bin    string
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
	// exit is the last process's exit code (-1 when killed by a signal).
	exit  int
	logMu sync.Mutex
	log   strings.Builder
}

// Start runs bin serve against dbURL with a fresh storage dir and a free
// port, shape deletion enabled and debug logs; env adds or overrides
// variables. The server is stopped when the test ends, and its log is
// printed if the test failed.
func Start(t testing.TB, bin, dbURL string, env ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: bin, DBURL: dbURL, Storage: t.TempDir(), env: env, Port: FreePort(t)}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(s.Port)
	// Another process may bind the port between FreePort and volt's
	// listen: then volt exits at once and starts again on another port.
	for try := 1; ; try++ {
		err := s.launch()
		if err == nil {
			break
		}
		if try == 3 || !strings.Contains(s.Log(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("volt's port %d was taken; starting again on another", s.Port)
		s.logMu.Lock()
		s.log.Reset()
		s.logMu.Unlock()
		s.Port = FreePort(t)
		s.URL = "http://127.0.0.1:" + strconv.Itoa(s.Port)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("volt log:\n%s", s.Log())
		}
	})
	return s
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatal(err)
	}
}

// launch starts the process and waits for it to report healthy.
func (s *Server) launch() error {
	cmd := exec.Command(s.bin, "serve")
	cmd.Env = os.Environ()
	if s.DBURL != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+s.DBURL)
	}
	cmd.Env = append(cmd.Env,
		"VOLT_PORT="+strconv.Itoa(s.Port), "VOLT_STORAGE_DIR="+s.Storage,
		"VOLT_LOG_LEVEL=debug", "VOLT_ALLOW_SHAPE_DELETION=true", "VOLT_REPLICATION_STREAM_ID=s"+strconv.Itoa(s.Port))
	cmd.Env = append(cmd.Env, s.env...)
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start volt: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.logMu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.logMu.Unlock()
		}
		_ = cmd.Wait()
		s.exit = cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	return s.waitHealthy()
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// waitHealthy polls /v1/health until it reports active (the process has no
// other readiness signal).
func (s *Server) waitHealthy() error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.cmd = nil
			return fmt.Errorf("volt exited during start-up:\n%s", s.Log())
		default:
		}
		if resp, err := http.Get(s.URL + "/v1/health"); err == nil {
			var body struct{ Status string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == 200 && body.Status == "active" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("volt did not become healthy:\n%s", s.Log())
}

// Stop ends the server with SIGTERM and waits (SIGKILL after 20 s).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// ExitCode is the exit code of the last process that stopped (-1 when a
// signal killed it).
func (s *Server) ExitCode() int { return s.exit }

// Kill ends the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts the server again on the same storage and port.
func (s *Server) Restart() { s.start() }

// FreePort returns a port that was free a moment ago, outside the range
// the kernel gives outgoing connections (pgembed.FreePort).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := pgembed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// PID returns the running server's process id (0 when stopped).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
