package shapecache

import (
	"runtime"
	"sync"
)

// evalPool runs the conversion of replicated changes into shape log
// entries (where-clause evaluation, message building, appends) off the
// replication goroutine. Work is queued per table: one table's jobs run
// one at a time and in commit order, so every shape (it belongs to one
// table) sees its transactions in order, while other tables' jobs run on
// the other workers. A table whose shapes are slow to evaluate occupies
// at most one worker. Tables take turns: a worker runs one job of a table
// and then puts the table at the back of the line.
type evalPool struct {
	mu     sync.Mutex
	cond   *sync.Cond
	tables map[uint32]*tableQueue
	ready  []*tableQueue // scheduled tables not being run, oldest first
	closed bool
	run    func(*tableJob)
}

// tableQueue is one table's pending jobs; scheduled is set while it is in
// ready or being run.
type tableQueue struct {
	oid       uint32
	jobs      []*tableJob
	scheduled bool
}

// evalWorkers is the pool's size: GOMAXPROCS, and at least two so that a
// slow table never holds up all others.
func evalWorkers() int { return max(runtime.GOMAXPROCS(0), 2) }

func (p *evalPool) start(workers int, wg *sync.WaitGroup, run func(*tableJob)) {
	p.cond = sync.NewCond(&p.mu)
	p.tables = map[uint32]*tableQueue{}
	p.run = run
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			p.work()
		}()
	}
}

// submit queues j behind the table's earlier jobs. It reports false once
// the pool is closed.
func (p *evalPool) submit(oid uint32, j *tableJob) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	q := p.tables[oid]
	if q == nil {
		q = &tableQueue{oid: oid}
		p.tables[oid] = q
	}
	q.jobs = append(q.jobs, j)
	if !q.scheduled {
		q.scheduled = true
		p.ready = append(p.ready, q)
		p.cond.Signal()
	}
	return true
}

// close makes the workers exit once every queued job has run.
func (p *evalPool) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *evalPool) work() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for len(p.ready) == 0 {
			if p.closed {
				return
			}
			p.cond.Wait()
		}
		q := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		j := q.jobs[0]
		q.jobs[0] = nil
		q.jobs = q.jobs[1:]
		p.mu.Unlock()
		p.run(j)
		p.mu.Lock()
		if len(q.jobs) > 0 {
			p.ready = append(p.ready, q)
			p.cond.Signal()
		} else {
			q.scheduled = false
			delete(p.tables, q.oid)
		}
	}
}
