// The part patterns 2 and 3 share: the synced rows of the list's shape, a
// WriteQueue whose pending mutations are drawn on top of them, and the
// card's handlers. The two patterns differ only in where the queue lives
// (optimistic.js, shared.js).
import { writeHandlers } from './api.js'
import { WriteQueue, overlay } from './queue.js'
import { follow, byCreated } from './shape.js'

export function overlayList({ view, net, table, store, lock }) {
  let shape = null
  const redraw = () => draw()
  const queue = new WriteQueue({ net, store, lock, onChange: redraw })
  const visible = () => overlay(shape?.rows ?? new Map(), queue.state.entries, net, queue.sending)
  const handlers = {
    ...writeHandlers(table, (m) => queue.add([m], visible())),
    onDismiss: (id) => queue.dismiss(id),
    onRedraw: redraw,
  }
  function draw() {
    const st = queue.state
    const items = [...visible().values()].sort(byCreated)
    const waiting = st.entries.length
    let status = ''
    if (!shape?.upToDate) status = net.offline ? 'Offline: cannot load the list' : 'Loading…'
    else if (waiting && net.offline) status = `Offline: ${plural(waiting, 'write')} queued, sent when back online`
    else if (waiting) status = `${plural(waiting, 'write')} on the way`
    view.render({ items, notices: st.notices, status, synced: Boolean(shape?.upToDate), meta: `client_id ${st.clientId} · next seq ${st.nextSeq}` })
  }
  view.handlers = { ...view.handlers, ...handlers }
  shape = follow(table, net, () => {
    queue.confirm()
    draw()
  })
  queue.echo = shape.echo
  net.addEventListener('change', redraw)
  draw()
  queue.run() // pattern 3: what a previous page left unsent
  return { queue, shape, redraw }
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
