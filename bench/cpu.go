package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux).
const clockTick = 10 * time.Millisecond

// Phase is the resource use of one scenario.
type Phase struct {
	Name      string
	Wall      time.Duration
	ServerCPU time.Duration // volt serve, user + system
	ClientCPU time.Duration // the bench process (load clients, baselines' clients)
}

// cpuMark is a point in time to measure a phase from.
type cpuMark struct {
	at             time.Time
	server, client time.Duration
}

func (e *Env) markCPU() cpuMark {
	s, _ := processCPU(e.server.Process.Pid)
	return cpuMark{at: time.Now(), server: s, client: selfCPU()}
}

func (e *Env) phaseSince(name string, m cpuMark) Phase {
	now := e.markCPU()
	return Phase{Name: name, Wall: now.at.Sub(m.at), ServerCPU: now.server - m.server, ClientCPU: now.client - m.client}
}

// processCPU is utime + stime of pid from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read process stat: %w", err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * clockTick, nil
}

// selfCPU is this process's user + system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
