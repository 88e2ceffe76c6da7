package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voltsync/volt/client"
)

func TestNewChecksURL(t *testing.T) {
	for _, u := range []string{"", "localhost:3000", "ftp://x", "http://[::1"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	c, err := client.New("http://localhost:3000")
	if err != nil || c.URL() != "http://localhost:3000" {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := c.Writer(""); err == nil || !strings.Contains(err.Error(), "client id") {
		t.Errorf("Writer with an empty client id: %v", err)
	}
}

// TestLoggerAndOnErrorSeeTheCause: with the server down, WithOnError and
// WithLogger see every retry with its cause, and the error Run returns
// wraps it.
func TestLoggerAndOnErrorSeeTheCause(t *testing.T) {
	var buf bytes.Buffer
	var causes []error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(errsClosedURL(t), client.WithBackoff(time.Millisecond, 5*time.Millisecond),
		client.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))),
		client.WithOnError(func(err error, attempt int, retryIn time.Duration) {
			causes = append(causes, err)
			if attempt == 3 {
				cancel()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	sh, err := c.Shape(client.ShapeDef{Table: "items"})
	if err != nil {
		t.Fatal(err)
	}
	err = sh.Run(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Run: %v", err)
	}
	if len(causes) != 3 {
		t.Fatalf("%d OnError calls, want 3", len(causes))
	}
	for _, e := range causes {
		if !errors.Is(e, syscall.ECONNREFUSED) {
			t.Errorf("OnError got %v, not the refused connection", e)
		}
	}
	if n := strings.Count(buf.String(), "volt client: retrying"); n != 3 || !strings.Contains(buf.String(), "connection refused") {
		t.Errorf("log (%d retries):\n%s", n, buf.String())
	}
}
