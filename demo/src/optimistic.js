// Pattern 2: optimistic state in memory.
//
// A write shows at once, drawn over the synced rows, and the page moves on.
// The queue lives in this page's memory only: a reload drops every write
// that was not yet sent or confirmed (the server never hears of it), and
// each page load is a new client (client_id) with a new queue. Writes made
// offline wait in the queue and go when the network is back; a rejection
// removes the write from the queue, which is the rollback.
import { newId } from './api.js'
import { overlayList } from './overlaylist.js'

export function optimisticList({ view, net }) {
  const state = { clientId: `optimistic-${newId()}`, nextSeq: 1, entries: [], notices: [] }
  const store = { load: () => state, save: () => {} }
  return overlayList({ view, net, table: 'todos_optimistic', store })
}
