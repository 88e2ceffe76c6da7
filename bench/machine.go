package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
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
		Memory:   procField("/proc/meminfo", "MemTotal"),
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

func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = " (uncommitted changes)"
		}
	}
	return rev + dirty
}
