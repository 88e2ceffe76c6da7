// The page's calls to the server: volt's write endpoint and the demo's
// "reject next write" switch.

// post sends transactions [{seq, mutations}] of one client's queue to
// POST /v1/mutations through net, and returns the per-transaction results.
// It throws a TypeError when the network fails (the outcome is unknown:
// resend the same seqs), and a RequestError when the server refuses the
// request as a whole (nothing was applied).
export async function post(net, clientId, transactions) {
  const res = await net.fetch('/v1/mutations', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: clientId, transactions }),
  })
  const body = await res.json().catch(() => ({}))
  if (res.status >= 500) throw new TypeError(`server unavailable (${res.status}): ${body.message ?? ''}`)
  if (!res.ok) throw new RequestError(res.status, body.message ?? `HTTP ${res.status}`)
  return body.results
}

export class RequestError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

// setRejectNext arms (or disarms) the server's switch that rejects the
// list's next transaction. It is a plain request, not through the list's
// simulated network: it stands for an outside event (a rule changing, a
// conflicting edit) rather than something the page does.
export async function setRejectNext(list, armed) {
  const res = await fetch(`/demo/reject-next?list=${encodeURIComponent(list)}`, { method: armed ? 'POST' : 'DELETE' })
  if (!res.ok) throw new Error(await res.text())
  return (await res.json())[list]
}

export async function rejectSwitches() {
  const res = await fetch('/demo/reject-next')
  return res.ok ? res.json() : {}
}

// Mutations in the endpoint's format (docs/MUTATIONS.md).
export const mut = {
  insert: (table, row) => ({ op: 'insert', table, values: row }),
  update: (table, id, values) => ({ op: 'update', table, key: { id }, values }),
  delete: (table, id) => ({ op: 'delete', table, key: { id } }),
}

// writeHandlers are a card's add, toggle, rename and delete handlers
// (view.js): each makes one mutation of table and gives it to write.
export function writeHandlers(table, write) {
  return {
    onAdd: (title) => write(mut.insert(table, { id: newId(), title, done: false, created_at: new Date().toISOString() })),
    onToggle: (id, done) => write(mut.update(table, id, { done })),
    onRename: (id, title) => write(mut.update(table, id, { title })),
    onDelete: (id) => write(mut.delete(table, id)),
  }
}

// rowId is the id a mutation touches.
export const rowId = (m) => m.key?.id ?? m.values?.id

export function newId() {
  return crypto.randomUUID()
}
