package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Machine describes where a run happened.
type Machine struct {
	CPUs     int
	CPUModel string
	Memory   string
	Kernel   string
	Postgres string
	Go       string
	Volt     string // VCS revision of the bench binary, when known
	FileMax  uint64 // open-files limit of the bench and server processes
}

func describeMachine(ctx context.Context, env *Env) Machine {
	m := Machine{
		CPUs:     runtime.NumCPU(),
		CPUModel: procField("/proc/cpuinfo", "model name"),
		Memory:   memTotal(),
		Kernel:   strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		Go:       runtime.Version(),
		Volt:     vcsRevision(),
		FileMax:  fileLimit(),
	}
	if err := env.Pool.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres); err != nil {
		m.Postgres = "unknown: " + err.Error()
	}
	return m
}

func (m Machine) lines() []string {
	return []string{
		fmt.Sprintf("CPUs: %d × %s", m.CPUs, m.CPUModel),
		"Memory: " + m.Memory,
		"Kernel: " + m.Kernel,
		"PostgreSQL: " + m.Postgres,
		"Go: " + m.Go,
		"volt: " + m.Volt,
		fmt.Sprintf("Open-files limit: %d", m.FileMax),
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return string(b)
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	for _, line := range strings.Split(readFile(path), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// memTotal is MemTotal from /proc/meminfo in GiB.
func memTotal() string {
	kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

// vcsRevision is the commit the binary was built from: its VCS stamp, or
// else the git checkout of the working directory (builds with
// -buildvcs=false carry no stamp).
func vcsRevision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = " (uncommitted changes)"
			}
		}
		if rev != "" {
			return rev + dirty
		}
	}
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out)) + " (HEAD of the working directory's checkout; the binary carries no VCS stamp)"
}
