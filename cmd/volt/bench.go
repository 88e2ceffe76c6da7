package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/voltsync/volt/bench"
)

const benchUsage = `Usage: volt bench [-quick] [-only s2,s3,…] [-out dir] [-cpuprofile dir]

Starts a throwaway PostgreSQL and "volt serve" (this binary, as a child
process) on 127.0.0.1, runs the scenarios S1 (initial sync), S4 (commit to
client with N unrelated shapes), S5 (fan-out), S10 (write round trip
through POST /v1/mutations), S15 (a write storm of 1,000 clients), S8 (replication keep-up at rising commit
rates), S11 (memory per idle shape and per parked request, restart to
ready), S2 (many clients, one new small shape), S3 (concurrent shape
creation), S13 (log growth and compaction), S14 (membership subquery
shapes: moves at scale) and S12 (stalled clients) with
baselines measured in the same run (COPY, LISTEN/NOTIFY, a naive 100 ms
poller, plain INSERTs, the writers without volt, pg_recvlogical to
/dev/null, the shapes' queries over pgx, one client, the idle server, a
new shape of the same rows), prints a table and writes it to
<out>/<date>-<mode>.md with one PNG plot per sweep beside it.

-cpuprofile profiles the bench process only; to profile the server, run
perf record -g -p <pid> with the volt serve pid from the progress output.
It reads no environment variables.

Flags:
`

// runBench is `volt bench`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); printFlags(stderr, fs) }
	quick := fs.Bool("quick", false, "small sizes only (under 3 minutes on 2 cores)")
	out := fs.String("out", "bench/results", "directory for the results file (empty: do not write one)")
	only := fs.String("only", "", "comma-separated scenarios to run (s1,s4,s5,s10,s15,s8,s11,s2,s3,s13,s14,s12); empty runs all")
	cpuprofile := fs.String("cpuprofile", "", "write one CPU profile of the bench process (the load clients, not the server) per scenario into this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the volt binary: %w", err)
	}
	cfg := bench.Config{Mode: "full", Sizes: bench.FullSizes(), ServerCmd: []string{exe, "serve"}, CPUProfileDir: *cpuprofile, Progress: stderr}
	if *quick {
		cfg.Mode, cfg.Sizes = "quick", bench.QuickSizes()
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := bench.WriteTable(stdout, rep.Rows); err != nil {
		return err
	}
	if *out == "" {
		return nil
	}
	path, err := bench.WriteResults(*out, rep, "volt bench "+strings.Join(args, " "))
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "results written to", path)
	return nil
}
