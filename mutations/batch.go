package mutations

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/voltsync/volt"
)

// Client transactions are applied in batches: one Postgres transaction
// holds the transactions of one request, and those of every other request
// that arrived while the pool's connections were busy (group commit). Each
// client transaction runs inside its own savepoint, with its seq check and
// its receipt, and ends with SET CONSTRAINTS ALL IMMEDIATE (its deferred
// constraints are checked there, not at the shared COMMIT), so a rejected
// one rolls back alone; the batch ends with one COMMIT, one WAL flush for
// all. The statements of consecutive client transactions are sent
// together: a failure makes Postgres skip the rest of the round trip, and
// after the failed transaction is rolled back to its savepoint and decided,
// the transactions after it are sent again.
//
// Every member of a batch shares its txid and xid8. Nothing of a batch is
// answered before its COMMIT: when the COMMIT (or the connection) fails,
// every member whose answer depended on it is answered retry.

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

	depsAtStart *dependencies // to start the batch over
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
	again   bool // a second attempt (stale catalog, new client)

	txid    int64
	sync    *string
	res     volt.MutationResult
	decided bool // res is its answer (pending: once the batch commits)
	pending bool // res depends on the batch's COMMIT (accepted, or a new rejection receipt)
}

// batchRun is one batch on one connection.
type batchRun struct {
	h         *Handler
	ctx       context.Context
	conn      *pgxpool.Conn
	tx        pgx.Tx
	ms        []*member
	p         *pipe
	seqAt     map[int]int // member → index of its seq check in p
	restarted bool
	lsn       int64
}

func (h *Handler) runBatch(jobs []*job) {
	ctx := context.Background()
	b := &batchRun{h: h, ctx: ctx}
	for _, j := range jobs {
		j.depsAtStart = j.deps.clone()
		for i := range j.txs {
			b.ms = append(b.ms, &member{j: j, i: i})
		}
	}
	defer b.finish()
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		b.dead(err)
		return
	}
	defer conn.Release()
	b.conn = conn
	b.begin()
	b.run()
}

// begin prepares every member (validation, Allow, FK order) and starts a
// pipe with BEGIN.
func (b *batchRun) begin() {
	for _, m := range b.ms {
		m.steps, m.prepErr = b.h.prepare(m.j.ctx, b.conn, m.j.txs[m.i])
	}
	b.tx = nil
	b.p = newPipe(true)
	b.seqAt = map[int]int{}
}

func (b *batchRun) run() {
	for k := 0; ; {
		for k < len(b.ms) {
			var ok bool
			if k, ok = b.queue(k); !ok {
				return
			}
		}
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
	for _, m := range b.ms {
		if m.pending && m.res.Status == volt.StatusAccepted {
			if b.lsn > 0 {
				m.res.LSN = strconv.FormatInt(b.lsn, 10)
			}
		}
	}
}

// queue queues member k's statements, sending what is queued when Go must
// run between two statements. It returns the member to queue next; ok is
// false once the batch is over.
func (b *batchRun) queue(k int) (next int, ok bool) {
	h, m := b.h, b.ms[k]
	j, ct := m.j, m.j.txs[m.i]
	ctx := j.ctx
	if j.stop != nil {
		r := *j.stop
		r.Seq = ct.Seq
		b.decide(m, r, false)
		return k + 1, true
	}
	if m.prepErr == nil {
		if dep, blocked := j.deps.blocking(m.steps); blocked {
			m.prepErr = Reject(volt.CodeDependent, "depends on rejected seq %d", dep)
		}
	}
	if m.prepErr != nil {
		// Rejected before any SQL: record it once what is queued has run.
		if resume, ok := b.flush(); !ok || resume >= 0 {
			return resume, ok
		}
		r := h.reject(ctx, b.tx, nil, j.clientID, ct, m.steps, j.deps, m.prepErr)
		b.decide(m, r, r.Status == volt.StatusRejected && !r.Replayed && r.Code != volt.CodeOutOfOrder)
		return k + 1, true
	}
	p := b.p
	p.cur = k
	p.exec(nil, savepointSQL)
	p.exec(nil, "SET CONSTRAINTS ALL DEFERRED")
	b.seqAt[k] = p.scan(nextSeqSQL, []any{j.clientID, ct.Seq}, &m.txid, &m.res.Xid8, &m.sync)
	steps := m.steps
	for i := 0; ; {
		checks := false
		for ; i < len(steps) && h.pipelined(steps[i]); i++ {
			c, err := h.queueRow(ctx, b.p, steps[i].row)
			if err != nil {
				return b.failAfterFlush(k, err)
			}
			checks = checks || c
		}
		if i == len(steps) {
			// Deferred constraints are checked here, for this client
			// transaction alone.
			b.p.exec(nil, "SET CONSTRAINTS ALL IMMEDIATE")
			if checks {
				// The Checks of inserted rows run as their rows are read:
				// before the savepoint is released.
				if resume, ok := b.flush(); !ok || resume >= 0 {
					return resume, ok
				}
				b.p.cur = k
			}
			b.p.exec(nil, "RELEASE "+savepointSQL)
			m.res.Status, m.res.Seq = volt.StatusAccepted, ct.Seq
			m.decided, m.pending = true, true
			return k + 1, true
		}
		// Go runs between this step and the next statement.
		if resume, ok := b.flush(); !ok || resume >= 0 {
			return resume, ok
		}
		var err error
		if st := steps[i]; st.row != nil {
			err = h.execRow(ctx, b.tx, st.row)
		} else {
			err = st.fn(ctx, b.tx, st.args)
		}
		if err != nil {
			return b.fail(k, err, false, false)
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
	m := b.ms[k]
	r := b.h.reject(m.j.ctx, b.tx, nil, m.j.clientID, m.j.txs[m.i], m.steps, m.j.deps, err)
	b.decide(m, r, r.Status == volt.StatusRejected && !r.Replayed && r.Code != volt.CodeOutOfOrder)
	return k + 1, true
}

// flush sends what is queued. resume is -1 when every statement
// succeeded; after a member failed, it was decided (or is to be tried
// again) and resume is the member to queue next. ok is false once the
// batch is over: its connection or COMMIT failed, and every member that
// depended on it is answered retry.
func (b *batchRun) flush() (resume int, ok bool) {
	p := b.p
	b.p = newPipe(false)
	seqAt := b.seqAt
	b.seqAt = map[int]int{}
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
		// Nothing of the round trip ran, and the transaction is aborted:
		// a statement could not be prepared, normally because a table
		// changed since the catalog was read.
		return b.restart(err)
	case b.tx == nil:
		return b.dead(err)
	}
	k := p.owners[failed]
	if k < 0 {
		if p.b.QueuedQueries[failed].SQL == walPositionSQL {
			return -1, true // after the COMMIT: only the upper bound is missing
		}
		return b.dead(err) // BEGIN or COMMIT
	}
	if at, ok := seqAt[k]; ok && failed <= at {
		return b.fail(k, err, raised(err, codeNotNext), !raised(err, codeNotNext))
	}
	if p.ops[failed] != nil && raised(err, codeMissing) {
		err = missing(p.ops[failed])
	}
	return b.fail(k, err, false, false)
}

// fail rolls member k back to its savepoint and decides it: notNext, its
// seq is not the client's next one; ours, volt's own statements failed.
func (b *batchRun) fail(k int, cause error, notNext, ours bool) (int, bool) {
	h, m := b.h, b.ms[k]
	j, ct := m.j, m.j.txs[m.i]
	// One round trip, unprepared: the transaction is aborted.
	if _, err := b.tx.Exec(b.ctx, "ROLLBACK TO "+savepointSQL+"; RELEASE "+savepointSQL); err != nil {
		return b.dead(cause)
	}
	m.decided, m.pending, m.res = false, false, volt.MutationResult{}
	switch {
	case notNext:
		r, next := h.notNext(j.ctx, b.tx, j.clientID, ct, j.deps)
		if next && !m.again {
			m.again = true
			return k, true
		}
		b.decide(m, r, false)
	case ours:
		b.decide(m, retryResult(cause), false)
	case catalogStale(cause) && !m.again:
		h.catalog.invalidate()
		m.again = true
		m.steps, m.prepErr = h.prepare(j.ctx, b.tx, ct)
		return k, true
	default:
		r := h.reject(j.ctx, b.tx, nil, j.clientID, ct, m.steps, j.deps, cause)
		b.decide(m, r, r.Status == volt.StatusRejected && !r.Replayed && r.Code != volt.CodeOutOfOrder)
	}
	return k + 1, true
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

// restart starts the batch over once, after a statement could not be
// prepared: the catalog is read again.
func (b *batchRun) restart(cause error) (int, bool) {
	if b.restarted {
		return b.dead(cause)
	}
	b.restarted = true
	if b.tx != nil {
		_ = b.tx.Rollback(b.ctx)
	}
	if b.conn.Conn().IsClosed() {
		return b.dead(cause)
	}
	b.h.catalog.invalidate()
	for _, m := range b.ms {
		*m = member{j: m.j, i: m.i}
	}
	for _, j := range jobsOf(b.ms) {
		j.stop, j.deps = nil, j.depsAtStart.clone()
	}
	b.begin()
	return 0, true
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

// finish hands each job its answers: the txid of the batch for accepted
// ones, and retry for every transaction after a retry.
func (b *batchRun) finish() {
	for _, m := range b.ms {
		if !m.decided {
			m.res = retryResult(errors.New("the transaction was not applied"))
		}
		if m.res.Status == volt.StatusAccepted && !m.res.Replayed {
			m.res.Txid = uint64(m.txid)
		}
		m.res.Seq = m.j.txs[m.i].Seq
	}
	for _, j := range jobsOf(b.ms) {
		j.results = make([]volt.MutationResult, len(j.txs))
	}
	for _, m := range b.ms {
		m.j.results[m.i] = m.res
	}
	for _, j := range jobsOf(b.ms) {
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
