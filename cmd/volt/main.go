// Command volt is the volt sync server.
//
//	volt serve    run the Electric-compatible sync service
//	volt demo     run the four write patterns side by side in a web page
package main

import (
	"context"
	"errors"
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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "volt:", err)
		os.Exit(1)
	}
}

const usage = `volt: an Electric-compatible Postgres sync service.

Usage:
  volt serve [flags]    run the server (volt serve -h lists the flags)
  volt demo [flags]     the four write patterns side by side in a web page (volt demo -h)
  volt bench [-quick]   measure volt against baselines (volt bench -h)
`

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := LoadConfig(args[1:], getenv)
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		return Serve(ctx, cfg, newLogger(cfg.LogLevel, stderr))
	case "demo":
		return runDemo(ctx, args[1:], getenv, stderr)
	case "bench":
		return runBench(ctx, args[1:], os.Stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
