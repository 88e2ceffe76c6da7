// follow runs the official client's ShapeStream on one table through the
// list's simulated network and keeps the rows in a Map (id → row). The
// rows are what the server has: never written by the page.
import { ShapeStream } from '@electric-sql/client'
import { Echo } from './echo.js'

export const backoffOptions = { initialDelay: 100, maxDelay: 1000, multiplier: 1.5 }

export function follow(table, net, onBatch) {
  const rows = new Map()
  const echo = new Echo()
  const state = { rows, echo, upToDate: false, error: null }
  const stream = new ShapeStream({
    url: new URL('/v1/shape', location.href).toString(),
    params: { table },
    fetchClient: net.fetch,
    backoffOptions,
    // Keep going after errors (the network simulator's included).
    onError: (err) => {
      state.error = err
      onBatch(state)
      return {}
    },
  })
  stream.subscribe((messages) => {
    echo.record(messages)
    for (const m of messages) {
      const h = m.headers
      if (h.control === 'must-refetch') {
        rows.clear()
        state.upToDate = false
      } else if (h.control === 'up-to-date') {
        state.upToDate = true
      } else if (h.operation === 'insert') {
        rows.set(m.value.id, { ...m.value })
      } else if (h.operation === 'update') {
        rows.set(m.value.id, { ...rows.get(m.value.id), ...m.value })
      } else if (h.operation === 'delete') {
        rows.delete(m.value.id)
      }
    }
    state.error = null
    onBatch(state)
  })
  state.stream = stream
  return state
}

// byCreated orders rows for display: oldest first, then by id.
export function byCreated(a, b) {
  const ta = millis(a.created_at), tb = millis(b.created_at)
  return ta !== tb ? ta - tb : String(a.id) < String(b.id) ? -1 : 1
}

// millis reads a timestamptz as Postgres prints it ("2024-05-01
// 10:00:00.123+00") or as the page writes it (ISO 8601).
function millis(t) {
  if (t instanceof Date) return t.getTime()
  const iso = String(t ?? '').replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')
  return Date.parse(iso) || 0
}
