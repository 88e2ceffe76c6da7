package bench

import (
	"fmt"
	"os"
	"path/filepath"
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
	PGCPU     time.Duration // Postgres: the postmaster, its reaped children and its live backends
}

// cpuMark is a point in time to measure a phase from.
type cpuMark struct {
	at                 time.Time
	server, client, pg time.Duration
}

func (e *Env) markCPU() cpuMark {
	s := e.pastServerCPU
	if e.server != nil {
		c, _ := processCPU(e.server.Process.Pid)
		s += c
	}
	return cpuMark{at: time.Now(), server: s, client: selfCPU(), pg: e.postgresCPU()}
}

// phaseSince is the resource use since m. A CPU difference below zero
// (a Postgres backend that exited between the marks and is not reaped yet)
// is reported as zero: these counters only resolve whole clock ticks.
func (e *Env) phaseSince(name string, m cpuMark) Phase {
	now := e.markCPU()
	return Phase{Name: name, Wall: now.at.Sub(m.at), ServerCPU: max(0, now.server-m.server),
		ClientCPU: max(0, now.client-m.client), PGCPU: max(0, now.pg-m.pg)}
}

// formatCPU prints a CPU time measured in clock ticks: zero means less
// than one tick, not no work.
func formatCPU(d time.Duration) string {
	if d < clockTick {
		return fmt.Sprintf("< %s", clockTick)
	}
	return d.Round(time.Millisecond).String()
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

// postgresCPU is the CPU time of the Postgres cluster: the postmaster's own
// and its reaped children's (cutime, cstime), plus every live child's. A
// backend that exits between two marks is counted once it is reaped, so
// short-lived connections make this approximate.
func (e *Env) postgresCPU() time.Duration {
	if e.cluster == nil {
		return 0
	}
	line, _, _ := strings.Cut(readFile(filepath.Join(e.cluster.DataDir, "postmaster.pid")), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	f, err := statFields(pm)
	if err != nil {
		return 0
	}
	total := time.Duration(0)
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseInt(f[i], 10, 64)
		total += time.Duration(v) * clockTick
	}
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		f, err := statFields(pid)
		if err != nil || f[1] != strconv.Itoa(pm) { // f[1] is the parent pid
			continue
		}
		c, _ := processCPU(pid)
		total += c
	}
	return total
}

// statFields are the fields of /proc/<pid>/stat after the command name:
// [0] state, [1] ppid, … [11] utime, [12] stime, [13] cutime, [14] cstime.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f, nil
}
