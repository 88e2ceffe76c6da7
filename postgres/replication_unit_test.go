package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestReplStatusUpdateEncoding(t *testing.T) {
	now := pgoutEpoch.Add(90 * time.Second)
	b := replStatusUpdate(300, 0, 0, now, true)
	if len(b) != 34 || b[0] != 'r' || b[33] != 1 {
		t.Fatalf("status update = %x", b)
	}
	// Unlike pglogrepl's helper, a zero flush position stays zero.
	for i, want := range []uint64{300, 0, 0, 90_000_000} {
		if got := binary.BigEndian.Uint64(b[1+8*i:]); got != want {
			t.Errorf("field %d = %d, want %d", i, got, want)
		}
	}
}

func TestReplParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"60s": time.Minute, "1min": time.Minute, "500ms": 500 * time.Millisecond, "0": 0, "2h": 2 * time.Hour, "1500": 1500 * time.Millisecond,
	} {
		if got, ok := replParseDuration(in); !ok || got != want {
			t.Errorf("replParseDuration(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "s", "10 fortnights", "-1"} {
		if _, ok := replParseDuration(in); ok {
			t.Errorf("replParseDuration(%q) accepted", in)
		}
	}
}

func TestReplBackoff(t *testing.T) {
	b := replBackoff()
	prevMax := time.Duration(0)
	for i := 0; i < 30; i++ {
		d := b.Next()
		ceiling := min(replBackoffMin<<min(i, 20), replBackoffMax)
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, ceiling/2, ceiling)
		}
		prevMax = max(prevMax, d)
	}
	if prevMax > replBackoffMax {
		t.Fatalf("delay %v above the maximum", prevMax)
	}
	b.Reset()
	if d := b.Next(); d > replBackoffMin {
		t.Fatalf("after reset: %v", d)
	}
}

func TestIsRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{io.EOF, true},
		{fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{errStreamEnded, true},
		{&pgconn.PgError{Code: "57P01", Severity: "FATAL"}, true}, // admin shutdown
		{&pgconn.PgError{Code: "57P03"}, true},                    // starting up
		{&pgconn.PgError{Code: "55006"}, true},                    // slot still active
		{&pgconn.PgError{Code: "53300"}, true},                    // too many connections
		{&pgconn.PgError{Code: "28P01"}, false},                   // bad password
		{&pgconn.PgError{Code: "42704"}, false},                   // undefined object
		{fmt.Errorf("x: %w", &DecodeError{Type: 'U', Err: ErrReplicaIdentityNotFull}), false},
		{fmt.Errorf("x: %w", ErrSlotMissing), false},
		{fmt.Errorf("%w: bad slot", errReaderConfig), false},
		{&replHandlerError{err: io.EOF}, false},
	} {
		if got := IsRetryable(c.err); got != c.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
