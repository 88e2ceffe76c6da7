// Pattern 1: online writes.
//
// The page keeps no local state: a write is a request to the server, and
// the list changes only when the server's answer and then the row itself
// (through the shape) come back. Meanwhile the list is blocked. Offline,
// a write fails and is gone: nothing queues it. A rejection changes
// nothing, since nothing was shown.
//
// A write whose request failed on the network has an unknown outcome (the
// server may have applied it and lost the answer). Rather than resend it
// (that would be a queue, pattern 2) the page starts a new client_id, so
// the next write can never be mistaken for the unknown one; if the unknown
// one was applied, its row simply arrives through the shape.
import { newId, post, rowId, writeHandlers } from './api.js'
import { isNetworkError } from './net.js'
import { follow, byCreated } from './shape.js'
import { describe } from './view.js'

const table = 'todos_online'

export function onlineList({ view, net }) {
  let clientId = `online-${newId()}`
  let nextSeq = 1
  let busy = null // {id, label, phase} while a write is in flight
  const notices = []
  let wakers = []
  const shape = follow(table, net, () => {
    const w = wakers
    wakers = []
    w.forEach((f) => f())
    draw()
  })
  const nextBatch = () => new Promise((resolve) => wakers.push(resolve))

  function notice(kind, title, text) {
    notices.push({ id: `${Date.now()}-${notices.length}`, kind, title, text })
  }

  async function write(m) {
    if (busy) return
    const label = describe(m, shape.rows.get(rowId(m)))
    busy = { id: rowId(m), label, phase: 'saving' }
    draw()
    try {
      const [r] = await post(net, clientId, [{ seq: nextSeq, mutations: [m] }])
      if (r.status !== 'retry') nextSeq++
      if (r.status === 'accepted') {
        busy.phase = 'syncing'
        draw()
        const answeredAt = shape.echo.upToDates
        while (!shape.echo.sees(r, answeredAt)) await nextBatch()
      } else if (r.status === 'retry') {
        notice('error', 'Not saved:', `${label}: the server asked to try again later (${r.message}).`)
      } else {
        notice('rejected', 'Rejected, nothing changed:', `${label}: ${r.message} [${r.code}]`)
      }
    } catch (err) {
      if (!isNetworkError(err)) throw err
      notice('error', 'Not saved:', `${label}: ${net.offline ? 'the list is offline' : err.message}. This pattern keeps no queue; try again when online.`)
      clientId = `online-${newId()}`
      nextSeq = 1
    } finally {
      busy = null
      draw()
    }
  }

  view.handlers = {
    ...writeHandlers(table, write),
    onDismiss: (id) => {
      const i = notices.findIndex((n) => n.id === id)
      if (i >= 0) notices.splice(i, 1)
      draw()
    },
    onRedraw: () => draw(),
  }

  function draw() {
    const items = [...shape.rows.values()].sort(byCreated).map((r) => {
      const waiting = busy && busy.id === r.id
      return { ...r, state: waiting ? 'pending' : 'confirmed', detail: waiting ? busy.phase : '' }
    })
    let status = ''
    if (busy) status = busy.phase === 'saving' ? `Saving: ${busy.label}. Waiting for the server…` : `Saved: ${busy.label}. Waiting for the row to sync back…`
    else if (!shape.upToDate) status = net.offline ? 'Offline: cannot load the list' : 'Loading…'
    else if (net.offline) status = 'Offline: writes will fail'
    view.render({ items, notices, status, busy: Boolean(busy), synced: shape.upToDate, meta: `client_id ${clientId} · next seq ${nextSeq}` })
  }
  net.addEventListener('change', draw)
  draw()
  return { shape }
}
