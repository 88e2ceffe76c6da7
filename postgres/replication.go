package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/backoff"
)

// Defaults of ReaderConfig.
const (
	DefaultPublication    = "volt_publication_default"
	DefaultSlot           = "volt_slot_default"
	DefaultStatusInterval = 10 * time.Second
)

// displaySettings sets the session settings under which Postgres formats
// values the way Electric serves them (protocol §8.1), in one round trip.
// The Reader runs it on the replication connection before
// START_REPLICATION; snapshot queries run it too (localDisplaySettings).
const displaySettings = "SET bytea_output = 'hex'; SET DateStyle = 'ISO, DMY'; SET TimeZone = 'UTC'; " +
	"SET extra_float_digits = 1; SET IntervalStyle = 'iso_8601'"

// localDisplaySettings is displaySettings for one transaction.
func localDisplaySettings() string { return strings.ReplaceAll(displaySettings, "SET ", "SET LOCAL ") }

// ErrSlotMissing is returned by Run when the replication slot does not
// exist (it was dropped, or Setup was not called). Streaming cannot resume:
// call Setup again, which creates a new slot, and discard all shapes.
var ErrSlotMissing = errors.New("replication slot does not exist")

// errReaderConfig marks configuration errors, which retrying cannot fix.
var errReaderConfig = errors.New("invalid reader configuration")

// Reconnect backoff bounds.
const (
	replBackoffMin = 100 * time.Millisecond
	replBackoffMax = 10 * time.Second
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	URL         string // normal postgres URL; the reader adds replication=database itself
	Publication string // default "volt_publication_default"
	Slot        string // default "volt_slot_default"; [a-z0-9_], at most 63 bytes
	Logger      *slog.Logger
	// StatusInterval is the standby status update period (default 10s, and
	// never more than a third of the server's wal_sender_timeout).
	StatusInterval time.Duration
}

// Handler receives transactions in commit order, one at a time, from the
// Reader's goroutine.
//
// After a reconnect (connection loss, Postgres restart, or a new Run)
// streaming resumes from the slot's confirmed position, which is never
// beyond DurableLSN: transactions the handler has already seen may be
// delivered again, and it must skip those whose EndLSN is at or below what
// it already has (CommitLSN increases strictly from one transaction to the
// next).
type Handler interface {
	// HandleTransaction processes tx. Every committed transaction that
	// decodes is delivered, including ones with no changes (an empty
	// transaction must still become durable for the slot to advance).
	// Returning an error stops Run, which returns it.
	HandleTransaction(ctx context.Context, tx *volt.Transaction) error
	// DurableLSN returns the highest EndLSN the handler has made durable.
	// The reader acknowledges (flush/apply) only up to it, except that,
	// when everything delivered is durable and no transaction is in
	// flight, it acknowledges the server's WAL position from keepalives
	// (the WAL in between held nothing for the handler).
	DurableLSN() uint64
}

// Reader streams committed transactions from a logical replication slot
// (pgoutput, proto_version 1).
type Reader struct {
	cfg ReaderConfig
	log *slog.Logger

	received  atomic.Uint64
	acked     atomic.Uint64
	connected atomic.Bool
	metrics   *readerMetrics // RegisterMetrics; nil: none
}

// NewReader returns a Reader for cfg, filling in defaults.
func NewReader(cfg ReaderConfig) *Reader {
	if cfg.Publication == "" {
		cfg.Publication = DefaultPublication
	}
	if cfg.Slot == "" {
		cfg.Slot = DefaultSlot
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Reader{cfg: cfg, log: log.With("component", "replication", "slot", cfg.Slot)}
}

// LastReceivedLSN returns the highest WAL position received from the server.
func (r *Reader) LastReceivedLSN() uint64 { return r.received.Load() }

// AckedLSN returns the flush position last acknowledged to the server.
func (r *Reader) AckedLSN() uint64 { return r.acked.Load() }

// Connected reports whether the Reader is currently streaming.
func (r *Reader) Connected() bool { return r.connected.Load() }

// Setup connects with replication=database, identifies the system, ensures
// the publication exists and creates the logical slot (pgoutput,
// NOEXPORT_SNAPSHOT) if it is missing. It reports whether the slot was
// created now, in which case all shapes must be discarded. When the
// publication itself had to be created, an existing slot is dropped and
// recreated (it may predate the publication, and decoding would fail). Setup
// is idempotent.
func (r *Reader) Setup(ctx context.Context) (created bool, err error) {
	if err := r.validate(); err != nil {
		return false, err
	}
	pubCreated, err := r.ensurePublication(ctx)
	if err != nil {
		return false, err
	}
	conn, err := r.connectReplication(ctx)
	if err != nil {
		return false, err
	}
	defer replClose(conn)
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return false, fmt.Errorf("identify system: %w", err)
	}
	r.log.Info("connected for replication", "system_id", sys.SystemID, "timeline", sys.Timeline,
		"wal_position", sys.XLogPos.String(), "database", sys.DBName)
	if pubCreated {
		if err := r.dropSlot(ctx, conn); err != nil {
			return false, err
		}
	}
	return r.createSlot(ctx, conn)
}

func (r *Reader) validate() error {
	if r.cfg.URL == "" {
		return fmt.Errorf("%w: URL is empty", errReaderConfig)
	}
	s := r.cfg.Slot
	if len(s) > 63 {
		return fmt.Errorf("%w: slot name %q is longer than 63 bytes", errReaderConfig, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("%w: slot name %q may only contain lower case letters, digits and underscores", errReaderConfig, s)
		}
	}
	return nil
}

// ensurePublication creates the publication over a normal connection.
func (r *Reader) ensurePublication(ctx context.Context) (bool, error) {
	cfg, err := pgx.ParseConfig(r.cfg.URL)
	if err != nil {
		return false, fmt.Errorf("%w: parse URL: %v", errReaderConfig, err)
	}
	delete(cfg.RuntimeParams, "replication")
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	created, err := NewPublisher(conn, r.cfg.Publication).Ensure(ctx)
	if created {
		r.log.Info("created publication", "publication", r.cfg.Publication)
	}
	return created, err
}

func (r *Reader) createSlot(ctx context.Context, conn *pgconn.PgConn) (bool, error) {
	_, err := pglogrepl.CreateReplicationSlot(ctx, conn, r.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if replPgCode(err) == replStateDuplicateObject {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create replication slot %s: %w", r.cfg.Slot, err)
	}
	r.log.Info("created replication slot")
	return true, nil
}

func (r *Reader) dropSlot(ctx context.Context, conn *pgconn.PgConn) error {
	err := pglogrepl.DropReplicationSlot(ctx, conn, r.cfg.Slot, pglogrepl.DropReplicationSlotOptions{})
	if replPgCode(err) == replStateUndefinedObject {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drop replication slot %s (the publication was new): %w", r.cfg.Slot, err)
	}
	r.log.Info("dropped replication slot older than the publication")
	return nil
}

// connectReplication opens a replication=database connection.
func (r *Reader) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(r.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: parse URL: %v", errReaderConfig, err)
	}
	cfg.RuntimeParams["replication"] = "database"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "volt_replication"
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect for replication: %w", err)
	}
	return conn, nil
}

func replClose(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// Run streams from the slot's confirmed position and calls h for every
// committed transaction, acknowledging what h has made durable. On
// connection loss or a Postgres restart it reconnects with exponential
// backoff and jitter (100ms to 10s) and resumes from the slot, so h may see
// transactions again (see Handler). Run returns nil when ctx is done, the
// handler's error when it fails, or an error that reconnecting cannot fix
// (IsRetryable(err) is false: a message that does not decode, e.g. from a
// table whose REPLICA IDENTITY is not FULL; ErrSlotMissing; a Postgres
// error such as failed authentication). Run must not be called
// concurrently on one Reader.
func (r *Reader) Run(ctx context.Context, h Handler) error {
	if err := r.validate(); err != nil {
		return err
	}
	dec := NewDecoder()
	bo := replBackoff()
	for {
		started, err := r.session(ctx, h, dec)
		if ctx.Err() != nil {
			return nil
		}
		var herr *replHandlerError
		if errors.As(err, &herr) {
			return herr.err
		}
		if !IsRetryable(err) {
			r.log.Error("replication stopped", "err", err)
			return err
		}
		if started {
			bo.Reset()
		}
		delay := bo.Next()
		r.log.Warn("replication connection lost; reconnecting", "err", err, "delay", delay)
		if backoff.Sleep(ctx, delay) != nil {
			return nil
		}
	}
}

// session runs one replication connection until it fails. started reports
// whether streaming began.
func (r *Reader) session(ctx context.Context, h Handler, dec *Decoder) (started bool, err error) {
	conn, err := r.connectReplication(ctx)
	if err != nil {
		return false, err
	}
	defer replClose(conn)
	interval, err := r.statusInterval(ctx, conn)
	if err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, displaySettings).ReadAll(); err != nil {
		return false, fmt.Errorf("%s: %w", displaySettings, err)
	}
	start, err := r.slotPosition(ctx, conn)
	if err != nil {
		return false, err
	}
	args := []string{"proto_version '1'", "publication_names " + replQuoteLiteral(pgx.Identifier{r.cfg.Publication}.Sanitize())}
	if err := pglogrepl.StartReplication(ctx, conn, r.cfg.Slot, 0,
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args}); err != nil {
		if replPgCode(err) == replStateUndefinedObject && strings.Contains(err.Error(), "slot") {
			return false, fmt.Errorf("start replication: %w: %w", ErrSlotMissing, err)
		}
		return false, fmt.Errorf("start replication: %w", err)
	}
	r.log.Info("streaming", "from", pglogrepl.LSN(start).String(), "status_interval", interval)
	r.connected.Store(true)
	defer r.connected.Store(false)
	dec.Reset()
	s := &replStream{r: r, h: h, conn: conn, dec: dec, interval: interval, acked: max(start, r.acked.Load())}
	return true, s.run(ctx)
}

// statusInterval reads wal_sender_timeout and returns the status period.
func (r *Reader) statusInterval(ctx context.Context, conn *pgconn.PgConn) (time.Duration, error) {
	res, err := conn.Exec(ctx, "SHOW wal_sender_timeout").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("show wal_sender_timeout: %w", err)
	}
	interval := r.cfg.StatusInterval
	if len(res) == 1 && len(res[0].Rows) == 1 && len(res[0].Rows[0]) == 1 {
		if t, ok := replParseDuration(string(res[0].Rows[0][0])); ok && t > 0 && t/3 < interval {
			interval = t / 3
		}
	}
	return interval, nil
}

// slotPosition returns the slot's confirmed_flush_lsn.
func (r *Reader) slotPosition(ctx context.Context, conn *pgconn.PgConn) (uint64, error) {
	res, err := conn.Exec(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = "+
		replQuoteLiteral(r.cfg.Slot)).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("read slot position: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) == 0 {
		return 0, fmt.Errorf("slot %s: %w", r.cfg.Slot, ErrSlotMissing)
	}
	text := res[0].Rows[0][0]
	if text == nil {
		return 0, fmt.Errorf("%w: slot %s has no confirmed_flush_lsn (not a logical slot?)", errReaderConfig, r.cfg.Slot)
	}
	lsn, err := pglogrepl.ParseLSN(string(text))
	if err != nil {
		return 0, fmt.Errorf("slot %s: %w", r.cfg.Slot, err)
	}
	return uint64(lsn), nil
}

// replHandlerError carries a Handler's error out of a session.
type replHandlerError struct{ err error }

func (e *replHandlerError) Error() string { return e.err.Error() }
func (e *replHandlerError) Unwrap() error { return e.err }

// errStreamEnded is returned when the server ends the COPY stream.
var errStreamEnded = errors.New("server ended the replication stream")

// replStream is the state of one streaming session. It is used by the
// Reader's goroutine only (keepaliveDuring borrows it while that goroutine
// is blocked in the Handler).
type replStream struct {
	r        *Reader
	h        Handler
	conn     *pgconn.PgConn
	dec      *Decoder
	interval time.Duration

	acked         uint64 // flush position reported; never decreases
	received      uint64 // highest WAL position seen
	lastCommitEnd uint64 // EndLSN of the last transaction delivered
	idleWALEnd    uint64 // highest keepalive WAL end seen outside a transaction
	nextStatus    time.Time
}

func (s *replStream) run(ctx context.Context) error {
	s.r.acked.Store(s.acked)
	s.nextStatus = time.Now().Add(s.interval)
	for {
		switch {
		case !time.Now().Before(s.nextStatus):
			if err := s.sendStatus(true); err != nil {
				return err
			}
		case s.h.DurableLSN() > s.acked:
			// Durable progress is acknowledged at once, not at the next
			// interval: the slot releases WAL sooner and a stop loses nothing.
			if err := s.sendStatus(false); err != nil {
				return err
			}
		}
		msg, err := s.receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				s.finalStatus()
			}
			return err
		}
		if msg == nil {
			continue // status deadline
		}
		if err := s.dispatch(ctx, msg); err != nil {
			return err
		}
	}
}

// replAckDelay bounds how long a delivered transaction waits to be
// acknowledged once the handler has made it durable.
const replAckDelay = 100 * time.Millisecond

// finalStatus acknowledges what is durable before a deliberate stop, so
// that the slot does not lag by up to a status interval.
func (s *replStream) finalStatus() {
	if err := s.sendStatus(false); err != nil {
		s.r.log.Debug("final standby status failed", "err", err)
	}
}

// receive waits for the next message until the next status deadline; it
// returns nil, nil when the deadline passes first.
func (s *replStream) receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	deadline := s.nextStatus
	if s.lastCommitEnd > s.acked {
		// Delivered but not yet acknowledged: look again soon, as the
		// handler makes it durable in the background.
		if soon := time.Now().Add(replAckDelay); soon.Before(deadline) {
			deadline = soon
		}
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	msg, err := s.conn.ReceiveMessage(rctx)
	if err == nil {
		return msg, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if pgconn.Timeout(err) {
		return nil, nil
	}
	return nil, fmt.Errorf("receive replication message: %w", err)
}

func (s *replStream) dispatch(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		return s.onCopyData(ctx, m.Data)
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
	case *pgproto3.CopyDone:
		return errStreamEnded
	}
	return nil
}

func (s *replStream) onCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("keepalive: %w", err)
		}
		return s.onKeepalive(uint64(k.ServerWALEnd), k.ReplyRequested)
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("xlog data: %w", err)
		}
		s.noteReceived(uint64(x.WALStart))
		tx, err := s.dec.Decode(x.WALData)
		if err != nil {
			return fmt.Errorf("at WAL position %s: %w", x.WALStart, err)
		}
		if tx != nil {
			return s.deliver(ctx, tx)
		}
	}
	return nil
}

func (s *replStream) onKeepalive(walEnd uint64, reply bool) error {
	s.noteReceived(walEnd)
	if !s.dec.InTransaction() && walEnd > s.idleWALEnd {
		s.idleWALEnd = walEnd
	}
	if reply {
		return s.sendStatus(false)
	}
	return nil
}

func (s *replStream) deliver(ctx context.Context, tx *volt.Transaction) error {
	s.noteReceived(tx.EndLSN)
	err := s.keepaliveDuring(func() error { return s.h.HandleTransaction(ctx, tx) })
	if err != nil {
		return &replHandlerError{err: fmt.Errorf("handle transaction %d (commit %s): %w", tx.Xid, pglogrepl.LSN(tx.CommitLSN), err)}
	}
	s.lastCommitEnd = tx.EndLSN
	s.r.metrics.processed(tx)
	return nil
}

// keepaliveDuring runs fn (the Handler) and, should it take longer than the
// status interval, keeps the connection alive by repeating the last status
// meanwhile, so that a slow handler does not hit wal_sender_timeout.
func (s *replStream) keepaliveDuring(fn func() error) error {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	var tick func()
	tick = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := s.writeStatus(max(s.received, s.acked), s.acked, false); err != nil {
			s.r.log.Debug("status update during a slow handler failed", "err", err)
		}
		t.Reset(s.interval)
	}
	mu.Lock()
	t = time.AfterFunc(s.interval, tick)
	mu.Unlock()
	err := fn()
	mu.Lock()
	stopped = true
	t.Stop()
	mu.Unlock()
	return err
}

func (s *replStream) noteReceived(lsn uint64) {
	if lsn > s.received {
		s.received = lsn
		s.r.received.Store(lsn)
	}
}

// ackPosition is the flush position to report: what the handler has made
// durable, or the idle WAL end when everything delivered is durable and no
// transaction is in flight; never less than before.
func (s *replStream) ackPosition() uint64 {
	durable := s.h.DurableLSN()
	ack := max(s.acked, durable)
	if !s.dec.InTransaction() && durable >= s.lastCommitEnd {
		ack = max(ack, s.idleWALEnd)
	}
	return ack
}

// sendStatus acknowledges the current position; reply asks the server for
// a keepalive back, which tells an idle stream the server's WAL end.
func (s *replStream) sendStatus(reply bool) error {
	s.acked = s.ackPosition()
	s.r.acked.Store(s.acked)
	return s.writeStatus(max(s.received, s.acked), s.acked, reply)
}

// writeStatus sends a standby status update (write, flush = apply) and
// schedules the next one.
func (s *replStream) writeStatus(write, flush uint64, reply bool) error {
	buf, err := (&pgproto3.CopyData{Data: replStatusUpdate(write, flush, flush, time.Now(), reply)}).Encode(nil)
	if err != nil {
		return fmt.Errorf("encode standby status: %w", err)
	}
	if err := s.conn.Frontend().SendUnbufferedEncodedCopyData(buf); err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.nextStatus = time.Now().Add(s.interval)
	return nil
}

// replStatusUpdate encodes a Standby Status Update ('r'): Int64 write,
// flush and apply positions, Int64 client time (µs since 2000-01-01),
// Byte1 reply requested. (pglogrepl's helper replaces a zero flush position
// with the write position, which would acknowledge too much.)
func replStatusUpdate(write, flush, apply uint64, now time.Time, reply bool) []byte {
	b := make([]byte, 34)
	b[0] = pglogrepl.StandbyStatusUpdateByteID
	binary.BigEndian.PutUint64(b[1:], write)
	binary.BigEndian.PutUint64(b[9:], flush)
	binary.BigEndian.PutUint64(b[17:], apply)
	binary.BigEndian.PutUint64(b[25:], uint64(now.Sub(pgoutEpoch).Microseconds()))
	if reply {
		b[33] = 1
	}
	return b
}

// IsRetryable reports whether reconnecting may cure err: network errors,
// connection loss, server shutdown or start-up, an active slot still held by
// a previous connection. Decode errors, ErrSlotMissing, configuration errors
// and other Postgres errors are not retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var de *DecodeError
	if errors.As(err, &de) || errors.Is(err, ErrSlotMissing) || errors.Is(err, errReaderConfig) {
		return false
	}
	var he *replHandlerError
	if errors.As(err, &he) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return replRetryableSQLState(pgErr.Code)
	}
	return true // I/O errors, EOF, closed connection, timeouts, stream ended
}

func replRetryableSQLState(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"), // insufficient resources (too many connections)
		strings.HasPrefix(code, "57"), // admin/crash shutdown, cannot connect now
		strings.HasPrefix(code, "58"), // system error (I/O)
		code == replStateObjectInUse,  // slot still active for a previous walsender
		code == replStateDeadlockDetected, code == "40001":
		return true
	}
	return false
}

// replBackoff returns the reconnect delays: "equal jitter", the n-th in a
// row uniform in [d/2, d] with d = min(replBackoffMax, replBackoffMin·2ⁿ).
func replBackoff() backoff.Backoff {
	return backoff.Backoff{Initial: replBackoffMin, Max: replBackoffMax, Jitter: backoff.Equal}
}

// replParseDuration parses a Postgres time setting as SHOW prints it
// ("60s", "1min", "500ms", "0"; a bare number is milliseconds).
func replParseDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	units := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	unit, ok := units[strings.TrimSpace(s[i:])]
	if !ok {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// replQuoteLiteral quotes s as a SQL string literal (standard_conforming_strings on).
func replQuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
