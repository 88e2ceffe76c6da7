// WriteQueue is the write side of patterns 2 and 3: a client's queue of
// transactions, sent in order to POST /v1/mutations, each exactly once.
//
// An entry is {seq, mutations, label, status, result, answeredAt}:
//   queued    not yet answered (never sent, or its answer was lost);
//   accepted  committed by the server, waiting for its echo in the shape;
// A rejected entry leaves the queue and becomes a notice; an accepted one
// leaves it once its echo arrived (confirm). What the user sees is the
// synced rows with the queue's mutations on top (overlay), so removing an
// entry is the rollback, or the hand-over to the synced rows.
//
// Where the queue lives is the store's business: memory for pattern 2
// (lost on reload), localStorage for pattern 3 (kept, and shared by the
// tabs of one browser). The store must give load() and save(state) with
// state = {clientId, nextSeq, entries, notices}.
//
// Delivery: after a network failure the same seqs are sent again; volt
// applies each seq once and answers a resend with the stored result
// ("replayed"), so a write whose answer was lost is never applied twice.
import { post, RequestError, rowId } from './api.js'
import { isNetworkError, sleep } from './net.js'
import { describe } from './view.js'

export class WriteQueue {
  constructor({ net, store, lock, onChange }) {
    this.net = net
    this.store = store
    this.lock = lock // Web Lock name: one tab sends at a time (pattern 3)
    this.onChange = onChange
    this.sending = false
    this.echo = null // set by the pattern: the shape's Echo
    // run sends until nothing is queued. Calls while it runs make it look
    // again before it stops.
    this.run = coalesced(() => this.#loop(), 'write queue')
  }

  get state() {
    return this.store.load()
  }

  // add appends one transaction and starts sending. before gives the rows
  // as the user saw them, to describe the write if it is rejected.
  add(mutations, before) {
    const st = this.store.load()
    const label = mutations.map((m) => describe(m, before.get(rowId(m)))).join(', ')
    st.entries.push({ seq: st.nextSeq++, mutations, label, status: 'queued' })
    this.store.save(st)
    this.onChange()
    this.run()
  }

  // confirm drops accepted entries whose echo the shape has delivered.
  confirm() {
    if (!this.echo) return
    const st = this.store.load()
    const keep = st.entries.filter((e) => !(e.status === 'accepted' && this.echo.sees(e.result, e.answeredAt ?? Infinity)))
    if (keep.length !== st.entries.length) {
      st.entries = keep
      this.store.save(st)
    }
  }

  dismiss(id) {
    const st = this.store.load()
    st.notices = st.notices.filter((n) => n.id !== id)
    this.store.save(st)
    this.onChange()
  }

  async #loop() {
    let backoff = 250
    for (;;) {
      if (!this.store.load().entries.some((e) => e.status === 'queued')) return
      if (this.net.offline) {
        this.onChange()
        await this.net.online()
        continue
      }
      // One request at a time per queue: with a lock name, across the
      // browser's tabs too. The lock is not held while waiting.
      const send = () => this.#sendOnce()
      const outcome = this.lock && navigator.locks ? await navigator.locks.request(this.lock, send) : await send()
      if (outcome === 'network') {
        await Promise.race([sleep(backoff), this.net.offline ? this.net.online() : new Promise(() => {})])
        backoff = Math.min(backoff * 2, 2000)
      } else {
        backoff = 250
        if (outcome === 'retry') await sleep(500)
      }
    }
  }

  // sendOnce posts what is queued (read again under the lock: another tab
  // may have sent it) and records the answers: 'sent', 'retry' (the server
  // asked for it) or 'network' (no answer).
  async #sendOnce() {
    const st = this.store.load()
    const todo = st.entries.filter((e) => e.status === 'queued').slice(0, 50)
    if (todo.length === 0) return 'sent'
    this.sending = true
    this.onChange()
    try {
      const results = await post(this.net, st.clientId, todo.map((e) => ({ seq: e.seq, mutations: e.mutations })))
      return this.#settle(results) ? 'retry' : 'sent'
    } catch (err) {
      if (err instanceof RequestError) {
        // The request as a whole was refused: nothing was applied.
        this.#settle(todo.map((e) => ({ seq: e.seq, status: 'rejected', code: `http_${err.status}`, message: err.message })))
        return 'sent'
      }
      if (!isNetworkError(err)) throw err
      return 'network'
    } finally {
      this.sending = false
      this.onChange()
    }
  }

  // settle records the server's results; it reports whether one asked to
  // retry.
  #settle(results) {
    const st = this.store.load()
    let retry = false
    for (const r of results) {
      const i = st.entries.findIndex((e) => e.seq === r.seq)
      if (i < 0) continue
      const e = st.entries[i]
      if (r.status === 'accepted') {
        e.status = 'accepted'
        e.result = { txid: r.txid, lsn: r.lsn, replayed: r.replayed ?? false }
        e.answeredAt = this.echo?.upToDates ?? 0
      } else if (r.status === 'retry') {
        retry = true
      } else if (r.code === 'out_of_order') {
        outOfOrder(st, r)
      } else {
        st.entries.splice(i, 1)
        st.notices.push({
          id: `${st.clientId}/${e.seq}`,
          kind: 'rejected',
          title: 'Rejected, rolled back:',
          text: `${e.label}: ${r.message} [${r.code}]`,
        })
      }
    }
    this.store.save(st)
    this.confirm()
    this.onChange()
    return retry
  }
}

// outOfOrder follows the endpoint's expected_seq: seqs below it are already
// decided on the server (their entries are dropped), and when the server
// expects an earlier seq than the queue's first, the queue is renumbered
// from it. Neither happens while the store keeps nextSeq with the entries.
function outOfOrder(st, r) {
  const expected = r.expected_seq
  if (expected == null) return
  if (expected > r.seq) {
    st.entries = st.entries.filter((e) => e.seq >= expected)
  } else {
    let seq = expected
    for (const e of st.entries) if (e.status === 'queued') e.seq = seq++
    st.nextSeq = seq
  }
}

// overlay computes what the user sees: the synced rows (confirmed) with
// the queue's mutations applied in order (pending).
export function overlay(rows, entries, net, sending) {
  const view = new Map([...rows].map(([id, r]) => [id, { ...r, state: 'confirmed' }]))
  for (const e of entries) {
    const detail = pendingDetail(e.status, net, sending)
    for (const m of e.mutations) {
      const id = rowId(m)
      if (m.op === 'insert') view.set(id, { ...m.values, state: 'pending', detail })
      else if (m.op === 'delete') view.delete(id)
      else if (view.has(id)) view.set(id, { ...view.get(id), ...m.values, state: 'pending', detail })
    }
  }
  return view
}

// pendingDetail says where a pending write is, from its queue status
// ('queued' or 'accepted').
export function pendingDetail(status, net, sending) {
  return status === 'accepted' ? 'syncing' : net.offline ? 'queued · offline' : sending ? 'sending' : 'queued'
}

// coalesced wraps an async task so that it runs once at a time: calls
// while it runs make it run once more after, however many there were.
// Errors are logged under label.
export function coalesced(task, label) {
  let running = false
  let again = false
  return function run() {
    if (running) {
      again = true
      return
    }
    running = true
    task()
      .catch((err) => console.error(label, err))
      .finally(() => {
        running = false
        if (again) {
          again = false
          run()
        }
      })
  }
}
