// Pattern 3: shared persistent optimistic state.
//
// The synced rows stay as the server sent them; the page's own writes live
// in a separate overlay (the queue of pending transactions), kept in
// localStorage with the client_id and the next seq. What the user sees is
// the two merged on read. So:
//   - a reload keeps pending writes: they are drawn again at once, and the
//     unsent ones go out with their original seqs (a write whose answer the
//     reload cut off is answered "replayed", never applied twice);
//   - every tab of the browser reads the same overlay (storage events
//     redraw the others), and a Web Lock lets one tab send at a time;
//   - an overlay entry goes away when its own write's echo reaches the
//     synced rows (txid, snapshot or LSN: echo.js), so other users' writes
//     to the same row do not clear it early.
import { newId } from './api.js'
import { overlayList } from './overlaylist.js'

const KEY = 'volt-demo:shared:v1'

export function sharedList({ view, net }) {
  const store = {
    load() {
      try {
        const st = JSON.parse(localStorage.getItem(KEY))
        if (st?.clientId) return st
      } catch {}
      const st = { clientId: `shared-${newId()}`, nextSeq: 1, entries: [], notices: [] }
      localStorage.setItem(KEY, JSON.stringify(st))
      return st
    },
    save(st) {
      localStorage.setItem(KEY, JSON.stringify(st))
    },
  }
  // answeredAt counts this page's up-to-dates (echo.js): an earlier page's
  // answers are older than all of them.
  const st = store.load()
  for (const e of st.entries) if (e.status === 'accepted') e.answeredAt = 0
  store.save(st)
  const list = overlayList({ view, net, table: 'todos_shared', store, lock: 'volt-demo-shared-sender' })
  // Another tab changed the overlay: redraw, and send what it queued if
  // that tab is gone.
  addEventListener('storage', (e) => {
    if (e.key !== KEY) return
    list.redraw()
    list.queue.run()
  })
  return list
}
