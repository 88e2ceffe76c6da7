// Command volt is the volt sync server.
//
//	volt serve    run the Electric-compatible sync service
//	volt demo     run the four write patterns side by side in a web page
//	volt bench    measure volt against baselines
//	volt reset    drop volt's replication slot, publication and schema
//	volt version  print the version and build
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fi, err := os.Stdin.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	c := cli{getenv: os.Getenv, environ: os.Environ, stdin: os.Stdin, stdinTerminal: terminal, stdout: os.Stdout, stderr: os.Stderr}
	if err := run(ctx, os.Args[1:], c); err != nil {
		fmt.Fprintln(os.Stderr, "volt:", err)
		os.Exit(1)
	}
}

// cli is what a command sees of its process (tests fill it in).
type cli struct {
	getenv        func(string) string
	environ       func() []string
	stdin         io.Reader
	stdinTerminal bool
	stdout        io.Writer
	stderr        io.Writer
}

const usage = `volt: an Electric-compatible Postgres sync service.

Usage:
  volt serve [flags]    run the server (volt serve -h lists the flags)
  volt demo [flags]     the four write patterns side by side in a web page (volt demo -h)
  volt bench [-quick]   measure volt against baselines (volt bench -h)
  volt reset [-yes]     drop volt's replication slot, publication and volt schema (volt reset -h)
  volt version          print volt's version and build
`

// run runs the command in args. -h and --help print the command's usage
// and are not errors.
func run(ctx context.Context, args []string, c cli) error {
	err := runCommand(ctx, args, c)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func runCommand(ctx context.Context, args []string, c cli) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig(args[1:], c.getenv, c.stderr)
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		log := newLogger(cfg.LogLevel, c.stderr)
		warnIgnoredElectric(log, c.environ())
		return Serve(ctx, cfg, log)
	case "demo":
		return runDemo(ctx, args[1:], c.getenv, c.stderr)
	case "bench":
		return runBench(ctx, args[1:], c.stdout, c.stderr)
	case "reset":
		return runReset(ctx, args[1:], c)
	case "version":
		return runVersion(args[1:], c.stdout, c.stderr)
	case "help", "-h", "--help":
		fmt.Fprint(c.stderr, usage)
		return nil
	}
	fmt.Fprint(c.stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
