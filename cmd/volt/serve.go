package main

import (
	"context"
	"log/slog"

	"github.com/voltsync/volt/server"
)

// Config is volt serve's configuration; loadConfig fills it from flags
// and environment variables.
type Config = server.Config

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config { return server.DefaultConfig() }

// Serve runs the server until ctx is cancelled, then shuts it down in
// order (server.Server.Close).
func Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	return server.Run(ctx, cfg, log, server.Hooks{})
}
