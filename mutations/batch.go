package mutations

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

// Client transactions are applied in batches: one Postgres transaction
// holds the transactions of one request, and those of every other request
// that arrived while the pool's connections were busy (group commit).
//
// A batch is one round trip when nothing fails: BEGIN; the claim (one
// statement advancing every client's last_seq over the seqs of the batch,
// which locks the clients' rows until COMMIT, and fails unless each first
// seq is the next one of its client); each client transaction inside its
// own savepoint (when the batch has more than one), with SET CONSTRAINTS
// ALL DEFERRED and IMMEDIATE around it when the database has deferrable
// constraints; one INSERT of every receipt, accepted and rejected; COMMIT,
// one WAL flush for all. A statement that fails makes Postgres skip the
// rest of the round trip: the failed transaction is rolled back to its
// savepoint and decided, and the transactions after it are sent again.
// When the claim fails (a resent seq, or one out of order), the receipts
// of every seq of the batch's requests are read with one query, the
// replays are answered from them, and the batch starts over with the
// fresh seqs.
//
// Every member of a batch shares its txid and xid8. Nothing of a batch is
// answered before its COMMIT: when the connection fails, every member
// whose answer depended on it is answered retry; when the COMMIT itself
// fails (a deferred constraint), every member is applied again in a
// Postgres transaction of its own, so that the guilty one is rejected and
// the others are applied.

// batchTransactions and batchMutations bound one batch (it holds at
// least one job). A request goes in chunks of at most chunkTransactions
// transactions and chunkMutations mutations (at least one transaction),
// each one after the previous one is committed, so that a large request
// holds a connection for one chunk at a time. Jobs of at most
// smallMutations mutations go first, and a batch that starts with one
// takes no larger job: a single-row write waits for at most one running
// batch, not for a large request's chunk in its own batch.
const (
	batchTransactions = 256
	batchMutations    = 1000
	chunkTransactions = 100
	chunkMutations    = 100
	smallMutations    = 10
)

const savepointSQL = "SAVEPOINT volt_txn"

// job is a chunk of one request's transactions, waiting for a batch.
type job struct {
	ctx      context.Context // the request's, without its cancellation
	clientID string
	txs      []volt.ClientTransaction
	deps     *dependencies
	size     int // mutations of txs
	results  []volt.MutationResult
	stop     *volt.MutationResult // set: the rest of txs get this answer
	done     chan struct{}

	// rest is txs and the request's transactions after them: when the
	// batch reads receipts, it reads those of all of them (one query
	// answers a resent queue), into known.
	rest  []volt.ClientTransaction
	known map[int64]volt.MutationResult // stored results by seq, shared by the request's jobs
	// lastSeq is the client's last_seq as read with the receipts, -1 when
	// not read (the batch then assumes the first seq is the next one).
	lastSeq int64
}

// committer hands queued jobs to batches, at most max at a time (one
// connection each). A batch takes every job queued when it starts; a job
// that arrives while all batches run waits for the next one, so the busier
// the endpoint, the larger the batches. Nothing waits idle for more jobs.
type committer struct {
	mu      sync.Mutex
	queue   []*job
	running int
	large   int // running batches that started with a large job
	max     int
}

// submit queues j and waits until a batch has decided all of it.
func (h *Handler) submit(j *job) {
	c := &h.commits
	c.mu.Lock()
	c.queue = append(c.queue, j)
	start := c.running < c.max
	if start {
		c.running++
	}
	c.mu.Unlock()
	if start {
		go h.drain()
	}
	<-j.done
}

// drain runs batches while jobs are queued.
func (h *Handler) drain() {
	c := &h.commits
	for {
		c.mu.Lock()
		jobs := c.take()
		if len(jobs) == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		large := jobs[0].size > smallMutations
		if large {
			c.large++
		}
		c.mu.Unlock()
		h.runBatch(jobs)
		for _, j := range jobs {
			close(j.done)
		}
		if large {
			c.mu.Lock()
			c.large--
			c.mu.Unlock()
		}
	}
}

// take removes the jobs of the next batch from the queue: the smallest
// first (then in order of arrival), up to batchTransactions transactions
// and batchMutations mutations (at least one job), only small ones after a
// small one, and one job per client, so that a replay read in a batch
// never sees a receipt that the same batch wrote. Large jobs keep one
// connection free for small ones: they wait while max-1 batches of large
// jobs run (one of which takes them when it ends).
func (c *committer) take() []*job {
	slices.SortStableFunc(c.queue, func(a, b *job) int { return a.size - b.size })
	if len(c.queue) > 0 && c.queue[0].size > smallMutations && c.max > 1 && c.large >= c.max-1 {
		return nil
	}
	var jobs, rest []*job
	n, m := 0, 0
	clients := map[string]bool{}
	for _, j := range c.queue {
		full := len(jobs) > 0 && (n+len(j.txs) > batchTransactions || m+j.size > batchMutations ||
			jobs[0].size <= smallMutations && j.size > smallMutations)
		if clients[j.clientID] || full {
			rest = append(rest, j)
			continue
		}
		clients[j.clientID] = true
		jobs = append(jobs, j)
		n, m = n+len(j.txs), m+j.size
	}
	c.queue = rest
	return jobs
}

// chunk returns the first chunk of txs and its mutations.
func chunk(txs []volt.ClientTransaction) ([]volt.ClientTransaction, int) {
	n, m := 0, 0
	for n < len(txs) && n < chunkTransactions && (n == 0 || m+len(txs[n].Mutations) <= chunkMutations) {
		m += len(txs[n].Mutations)
		n++
	}
	return txs[:n], m
}

// member is one client transaction of a batch.
type member struct {
	j       *job
	i       int // in j.txs
	steps   []step
	prepErr error
	again   bool // tried again after a stale catalog
	claimed bool // the batch's claim advances last_seq over its seq
	settled bool // decided by plan, without SQL

	res     volt.MutationResult
	decided bool // res is its answer (pending: once the batch commits)
	pending bool // res is recorded by the batch's receipts and stands once it commits
}

// jobState is what a batch restores when it starts over.
type jobState struct {
	stop *volt.MutationResult
	deps *dependencies
}

// batchRun is one Postgres transaction on one connection.
type batchRun struct {
	h     *Handler
	ctx   context.Context
	conn  *pgxpool.Conn
	tx    pgx.Tx
	ms    []*member
	saved map[*job]jobState
	p     *pipe

	// The claim: for each client, the seqs first..last of its claimed
	// members.
	claimJobs             []*job
	claimIDs              []string
	claimFirst, claimLast []int64
	recorded              map[*job]int64 // each claimed job's last recorded seq
	claimed               int            // members the claim covers
	savepoints            bool           // each member runs inside a savepoint
	careful               bool           // a member failed without one: savepoints from now on
	deferrable            bool           // the database has deferrable constraints

	txid int64
	xid8 string
	sync *string
	lsn  int64

	// Why run ended early: the claim failed, a member failed without a
	// savepoint of its own (the batch starts over with savepoints), a
	// statement could not be prepared, or the COMMIT failed.
	unclaimed bool
	again     bool
	stale     error
	commitErr error
}

func (h *Handler) runBatch(jobs []*job) {
	ctx := context.Background()
	var ms []*member
	for _, j := range jobs {
		j.lastSeq = -1
		for i := range j.txs {
			ms = append(ms, &member{j: j, i: i})
		}
	}
	defer finish(ms)
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		h.newBatch(ctx, nil, ms).dead(err)
		return
	}
	defer conn.Release()
	for _, m := range ms {
		m.steps, m.prepErr = h.prepare(m.j.ctx, conn, m.j.txs[m.i])
	}
	h.applyBatch(ctx, conn, ms)
}

func (h *Handler) newBatch(ctx context.Context, conn *pgxpool.Conn, ms []*member) *batchRun {
	b := &batchRun{h: h, ctx: ctx, conn: conn, ms: ms, saved: map[*job]jobState{}}
	for _, j := range jobsOf(ms) {
		b.saved[j] = jobState{stop: j.stop, deps: j.deps.clone()}
	}
	return b
}

// applyBatch decides ms in one Postgres transaction. When its COMMIT
// fails, each member is applied again in a transaction of its own: the
// one whose COMMIT then fails is rejected (in another transaction that
// records its rejection), and the others are applied.
func (h *Handler) applyBatch(ctx context.Context, conn *pgxpool.Conn, ms []*member) {
	b := h.newBatch(ctx, conn, ms)
	restarted := false
	for tries := 0; ; tries++ {
		b.run()
		switch {
		case b.unclaimed && tries < 3:
			// A seq was not the next one: read the receipts and start over.
			if !b.resolve() {
				return
			}
		case b.unclaimed:
			b.dead(errors.New("the client's queue changed while the transaction was applied"))
			return
		case b.again:
			// A member failed in a batch without savepoints: the batch
			// was rolled back and runs again with them, once.
		case b.stale != nil && !restarted:
			// A statement could not be prepared, normally because a table
			// changed since the catalog was read: read it again, once.
			restarted = true
			h.catalog.invalidate()
			for _, m := range ms {
				m.steps, m.prepErr = h.prepare(m.j.ctx, conn, m.j.txs[m.i])
			}
		case b.stale != nil:
			b.dead(b.stale)
			return
		case b.commitErr != nil && len(ms) > 1:
			b.reset()
			for _, m := range ms {
				h.applyBatch(ctx, conn, []*member{m})
			}
			return
		case b.commitErr != nil:
			// Alone, this member's COMMIT fails: its rejection is recorded
			// in a transaction of its own (a transient failure is retry).
			if _, final := outcome(b.commitErr); !final {
				b.dead(b.commitErr)
				return
			}
			ms[0].prepErr = b.commitErr
		default:
			return
		}
		b.reset()
	}
}

// reset forgets every decision of the batch, to start it over.
func (b *batchRun) reset() {
	if b.tx != nil {
		_ = b.tx.Rollback(b.ctx)
		b.tx = nil
	}
	for _, m := range b.ms {
		m.claimed, m.settled, m.res, m.decided, m.pending = false, false, volt.MutationResult{}, false, false
	}
	for j, s := range b.saved {
		j.stop = s.stop
		j.deps.restore(s.deps)
	}
}

// plan decides the members that need no transaction (replays, seqs out of
// order, the rest of a job after a retry) and claims the others' seqs. It
// reports whether any member is claimed.
func (b *batchRun) plan() bool {
	b.claimJobs, b.claimIDs, b.claimFirst, b.claimLast = nil, nil, nil, nil
	b.unclaimed, b.again, b.stale, b.commitErr = false, false, nil, nil
	claimed := 0
	for _, j := range jobsOf(b.ms) {
		next := int64(-1)
		if j.lastSeq >= 0 {
			next = j.lastSeq + 1
		}
		first := int64(-1)
		stop := j.stop // plan's out_of_order stops only the members after it
		for _, m := range b.ms {
			if m.j != j || m.decided {
				continue
			}
			ct := j.txs[m.i]
			m.settled = true
			switch {
			case j.stop != nil:
				r := *j.stop
				b.decide(m, r, false)
			case j.lastSeq >= 0 && ct.Seq <= j.lastSeq:
				r, ok := j.known[ct.Seq]
				if !ok {
					r = retryResult(errors.New("the receipt was not read"))
				}
				b.decide(m, r, false)
				if r.Status == volt.StatusRejected && r.Replayed {
					j.deps.reject(ct.Seq, b.h.identities(j.ctx, b.conn, ct))
				}
			case next >= 0 && ct.Seq != next:
				b.decide(m, outOfOrder(ct.Seq, next-1), false)
			default:
				if first < 0 {
					first = ct.Seq
				}
				next = ct.Seq + 1
				m.claimed, m.settled = true, false
				claimed++
			}
		}
		j.stop = stop
		if first >= 0 {
			b.claimJobs, b.claimIDs = append(b.claimJobs, j), append(b.claimIDs, j.clientID)
			b.claimFirst, b.claimLast = append(b.claimFirst, first), append(b.claimLast, next-1)
		}
	}
	// Members run without savepoints until one fails (rarely): the
	// batch is then rolled back and runs again with one per member, so
	// that the failed one rolls back alone.
	b.claimed = claimed
	b.savepoints = claimed > 1 && b.careful
	if claimed == 0 {
		return false
	}
	d, err := b.h.catalog.deferrable(b.ctx, b.conn)
	b.deferrable = d || err != nil
	// resolve reads the receipts right after the ROLLBACK of a failed
	// claim, in the same round trip: its statement must be prepared
	// before (once per connection; pgx keeps it).
	if _, err := b.conn.Conn().Prepare(b.ctx, resolveSQL, resolveSQL); err != nil {
		b.dead(err)
		return false
	}
	return true
}

// start begins the transaction: BEGIN and the claim.
func (b *batchRun) start() {
	b.tx = nil
	b.p = newPipe(true)
	b.p.claim = b.p.scan(claimSQL, []any{b.claimIDs, b.claimFirst, b.claimLast}, &b.txid, &b.xid8, &b.sync)
}

// run applies the batch once; it returns early (unclaimed, stale or
// commitErr set) when the batch must start over.
func (b *batchRun) run() {
	if !b.plan() {
		return
	}
	b.start()
	for k := 0; ; {
		for k < len(b.ms) {
			var ok bool
			if k, ok = b.queue(k); !ok {
				return
			}
		}
		b.p.cur = -1
		b.queueReceipts()
		if hook := b.h.beforeCommit; hook != nil {
			resume, ok := b.flush()
			if !ok {
				return
			}
			if resume >= 0 {
				k = resume
				continue
			}
			hook(b.ctx, b.tx)
		}
		b.p.cur = -1
		b.p.commit()
		b.p.scan(walPositionSQL, nil, &b.lsn)
		resume, ok := b.flush()
		if !ok {
			return
		}
		if resume < 0 {
			break
		}
		k = resume
	}
	for j, last := range b.recorded {
		j.lastSeq = last
	}
	for _, m := range b.ms {
		if m.pending && m.res.Status == volt.StatusAccepted {
			m.res.Txid, m.res.Xid8 = uint64(b.txid), b.xid8
			if b.lsn > 0 {
				m.res.LSN = strconv.FormatInt(b.lsn, 10)
			}
		}
	}
}

// queueReceipts queues the receipts of every member decided so far (one
// statement), and sets back the last_seq of a client whose claimed seqs
// were not all decided (a retry stopped its request).
func (b *batchRun) queueReceipts() {
	var ids, statuses, codes, messages, details []string
	var seqs []int64
	recorded := map[*job]int64{}
	for _, m := range b.ms {
		if !m.pending {
			continue
		}
		r := m.res
		detail := ""
		if r.Constraint != "" || r.Row != nil {
			d, _ := json.Marshal(receiptDetail{Constraint: r.Constraint, Row: r.Row})
			detail = string(d)
		}
		code, message := r.Code, r.Message
		if r.Status == volt.StatusAccepted {
			code, message = "", ""
		}
		ids, seqs, statuses = append(ids, m.j.clientID), append(seqs, r.Seq), append(statuses, r.Status)
		codes, messages, details = append(codes, code), append(messages, message), append(details, detail)
		recorded[m.j] = r.Seq
	}
	if len(ids) > 0 {
		b.p.exec(nil, receiptsSQL, ids, seqs, statuses, codes, messages, details)
	}
	var backIDs []string
	var backSeqs []int64
	b.recorded = map[*job]int64{}
	for i, j := range b.claimJobs {
		last, ok := recorded[j]
		if !ok {
			last = b.claimFirst[i] - 1
		}
		b.recorded[j] = last
		if last != b.claimLast[i] {
			backIDs, backSeqs = append(backIDs, j.clientID), append(backSeqs, last)
		}
	}
	if len(backIDs) > 0 {
		b.p.exec(nil, setLastSeqSQL, backIDs, backSeqs)
	}
}

// queue queues member k's statements, sending what is queued when Go must
// run between two statements. It returns the member to queue next; ok is
// false once the batch is over (or must start over).
func (b *batchRun) queue(k int) (next int, ok bool) {
	h, m := b.h, b.ms[k]
	if m.settled {
		return k + 1, true
	}
	j, ct := m.j, m.j.txs[m.i]
	ctx := j.ctx
	if j.stop != nil {
		r := *j.stop
		b.decide(m, r, false)
		return k + 1, true
	}
	if m.prepErr == nil {
		if dep, blocked := j.deps.blocking(m.steps); blocked {
			m.prepErr = Reject(volt.CodeDependent, "depends on rejected seq %d", dep)
		}
	}
	if m.prepErr != nil {
		// Rejected before any SQL: its receipt goes with the others.
		b.decideErr(m, m.prepErr)
		return k + 1, true
	}
	p := b.p
	p.cur = k
	if b.savepoints {
		p.exec(nil, savepointSQL)
	}
	if b.deferrable {
		p.exec(nil, "SET CONSTRAINTS ALL DEFERRED")
	}
	steps := m.steps
	ran := false // statements of m have run
	for i := 0; ; {
		checks := false
		for ; i < len(steps) && h.pipelined(steps[i]); i++ {
			c, err := h.queueRow(ctx, b.p, steps[i].row)
			if err != nil && ran {
				// Undo what ran with the rest of m.
				if resume, ok := b.flush(); !ok || resume >= 0 {
					return resume, ok
				}
				return b.fail(k, err)
			}
			if err != nil {
				return b.failAfterFlush(k, err)
			}
			checks = checks || c
		}
		if i == len(steps) {
			if b.deferrable {
				// Deferred constraints are checked here, for this client
				// transaction alone.
				b.p.exec(nil, "SET CONSTRAINTS ALL IMMEDIATE")
			}
			if checks {
				// The Checks of inserted rows run as their rows are read:
				// before the savepoint is released.
				if resume, ok := b.flush(); !ok || resume >= 0 {
					return resume, ok
				}
				b.p.cur = k
			}
			if b.savepoints {
				b.p.exec(nil, "RELEASE "+savepointSQL)
			}
			m.res.Status, m.res.Seq = volt.StatusAccepted, ct.Seq
			m.decided, m.pending = true, true
			return k + 1, true
		}
		// Go runs between this step and the next statement.
		if resume, ok := b.flush(); !ok || resume >= 0 {
			return resume, ok
		}
		ran = true
		var err error
		if st := steps[i]; st.row != nil {
			err = h.execRow(ctx, b.tx, st.row)
		} else {
			err = st.fn(ctx, b.tx, st.args)
		}
		if err != nil {
			return b.fail(k, err)
		}
		i++
		b.p.cur = k
	}
}

// failAfterFlush fails member k once the statements queued before it have
// run.
func (b *batchRun) failAfterFlush(k int, err error) (int, bool) {
	// Drop the member's own statements: they start at its savepoint.
	p := b.p
	cut := len(p.reads)
	for i, o := range p.owners {
		if o == k {
			cut = i
			break
		}
	}
	p.b.QueuedQueries, p.reads, p.ops, p.owners = p.b.QueuedQueries[:cut], p.reads[:cut], p.ops[:cut], p.owners[:cut]
	if resume, ok := b.flush(); !ok || resume >= 0 {
		return resume, ok
	}
	b.decideErr(b.ms[k], err)
	return k + 1, true
}

// flush sends what is queued. resume is -1 when every statement
// succeeded; after a member failed, it was decided (or is to be tried
// again) and resume is the member to queue next. ok is false once the
// batch is over (its connection failed, and every member that depended on
// it is answered retry) or must start over.
func (b *batchRun) flush() (resume int, ok bool) {
	p := b.p
	b.p = newPipe(false)
	if len(p.reads) == 0 {
		return -1, true
	}
	var br pgx.BatchResults
	if b.tx == nil {
		br = b.conn.SendBatch(b.ctx, &p.b)
	} else {
		br = b.tx.SendBatch(b.ctx, &p.b)
	}
	failed := -1
	var err error
	for i, read := range p.reads {
		if err = read(br); err != nil {
			failed = i
			break
		}
	}
	_ = br.Close()
	if b.tx == nil {
		b.tx = br.Tx()
	}
	var pre pgx.ErrPreprocessingBatch
	switch {
	case err == nil:
		return -1, true
	case errors.As(err, &pre):
		// Nothing of the round trip ran, and the transaction is aborted.
		b.stale = err
		return 0, false
	case b.tx == nil:
		return b.dead(err)
	case failed == p.claim && raised(err, codeNotNext):
		b.unclaimed = true
		return 0, false
	}
	k := p.owners[failed]
	if k < 0 {
		var pgErr *pgconn.PgError
		switch sql := p.b.QueuedQueries[failed].SQL; {
		case sql == walPositionSQL:
			return -1, true // after the COMMIT: only the upper bound is missing
		case sql == "COMMIT" && errors.As(err, &pgErr) && final(err) && !b.conn.Conn().IsClosed():
			// Postgres refused the COMMIT (a deferred constraint): the
			// transaction is rolled back.
			b.commitErr, b.tx = err, nil
			return 0, false
		}
		return b.dead(err) // BEGIN, the claim, the receipts, COMMIT
	}
	if p.ops[failed] != nil && raised(err, codeMissing) {
		err = missing(p.ops[failed])
	}
	return b.fail(k, err)
}

// fail undoes member k's statements and decides it: a member that ran
// without a savepoint (the only one of its batch) takes the transaction
// with it, and the batch begins again. In a batch of several members
// without savepoints, the batch is rolled back and must run again with
// them (again set).
func (b *batchRun) fail(k int, cause error) (int, bool) {
	h, m := b.h, b.ms[k]
	j, ct := m.j, m.j.txs[m.i]
	if !b.savepoints && b.claimed > 1 {
		err := b.tx.Rollback(b.ctx)
		b.tx = nil
		if err != nil {
			return b.dead(cause)
		}
		if _, final := outcome(cause); final && !catalogStale(cause) {
			// Decided now, not run again: a Check or a named mutation
			// may not decide the same way twice (it may count, or
			// look at the clock), and its rejection must stand.
			m.prepErr = cause
		}
		b.careful, b.again = true, true
		return 0, false
	}
	if b.savepoints {
		// One round trip, unprepared: the transaction is aborted.
		if _, err := b.tx.Exec(b.ctx, "ROLLBACK TO "+savepointSQL+"; RELEASE "+savepointSQL); err != nil {
			return b.dead(cause)
		}
	} else {
		if err := b.tx.Rollback(b.ctx); err != nil {
			return b.dead(cause)
		}
		b.start()
	}
	m.decided, m.pending, m.res = false, false, volt.MutationResult{}
	if catalogStale(cause) && !m.again {
		h.catalog.invalidate()
		m.again = true
		q := querier(b.conn)
		if b.savepoints {
			q = b.tx
		}
		m.steps, m.prepErr = h.prepare(j.ctx, q, ct)
		return k, true
	}
	b.decideErr(m, cause)
	return k + 1, true
}

// decideErr decides m by the error that ended it: a rejection, recorded
// by the batch's receipts, or retry.
func (b *batchRun) decideErr(m *member, err error) {
	r, final := outcome(err)
	b.decide(m, r, final)
	if final {
		m.j.deps.reject(m.j.txs[m.i].Seq, idsOf(m.steps))
	}
}

// decide sets m's answer; a retry or out_of_order answers the rest of its
// request the same way.
func (b *batchRun) decide(m *member, r volt.MutationResult, pending bool) {
	r.Seq = m.j.txs[m.i].Seq
	m.res, m.decided, m.pending = r, true, pending
	switch {
	case r.Status == volt.StatusRetry:
		m.j.stop = &volt.MutationResult{Status: volt.StatusRetry, Message: "an earlier transaction must be retried first"}
	case r.Code == volt.CodeOutOfOrder:
		m.j.stop = &r
	}
}

// resolve rolls back the transaction whose claim failed and reads, with
// one query, each client's last_seq and the receipts of its request's
// seqs up to it (the replays). It reports false when the batch is over.
func (b *batchRun) resolve() bool {
	var ids []string
	var seqs []int64
	for _, j := range jobsOf(b.ms) {
		for _, ct := range j.rest {
			ids, seqs = append(ids, j.clientID), append(seqs, ct.Seq)
		}
	}
	var batch pgx.Batch
	batch.Queue("ROLLBACK")
	batch.Queue(resolveSQL, ids, seqs)
	br := b.conn.SendBatch(b.ctx, &batch)
	b.tx = nil
	_, err := br.Exec()
	if err == nil {
		err = readReceipts(br, jobsOf(b.ms))
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.dead(err)
		return false
	}
	return true
}

// dead ends the batch: its transaction is rolled back (or its COMMIT's
// outcome is unknown), so every member whose answer depended on it is
// answered retry. A replayed or out_of_order answer read committed state
// and stands.
func (b *batchRun) dead(cause error) (int, bool) {
	if b.tx != nil {
		_ = b.tx.Rollback(b.ctx)
		b.tx = nil
	}
	for _, m := range b.ms {
		if !m.decided || m.pending {
			m.res = retryResult(cause)
			m.res.Seq = m.j.txs[m.i].Seq
			m.decided, m.pending = true, false
		}
	}
	return 0, false
}

// finish hands each job its answers, and retry for every transaction
// after a retry.
func finish(ms []*member) {
	for _, m := range ms {
		if !m.decided {
			m.res = retryResult(errors.New("the transaction was not applied"))
		}
		m.res.Seq = m.j.txs[m.i].Seq
	}
	for _, j := range jobsOf(ms) {
		j.results = make([]volt.MutationResult, len(j.txs))
	}
	for _, m := range ms {
		m.j.results[m.i] = m.res
	}
	for _, j := range jobsOf(ms) {
		for i, r := range j.results {
			if r.Status == volt.StatusRetry {
				for k := i + 1; k < len(j.results); k++ {
					if j.results[k].Status != volt.StatusRetry {
						j.results[k] = volt.MutationResult{Seq: j.txs[k].Seq, Status: volt.StatusRetry, Message: "an earlier transaction must be retried first"}
					}
				}
				break
			}
		}
	}
}

func jobsOf(ms []*member) []*job {
	var jobs []*job
	for _, m := range ms {
		if len(jobs) == 0 || jobs[len(jobs)-1] != m.j {
			jobs = append(jobs, m.j)
		}
	}
	return jobs
}
