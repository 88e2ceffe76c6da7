// Paging: large snapshots and long logs are served in several chunks (the Go
// driver runs volt with 10 kB chunks); a client that joins late or resumes
// from a stored offset + handle must still end equal to Postgres.
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, waitForRows, check, SHAPE_URL, diagnostics } from './helpers.mjs'
import { ShapeStream } from '@electric-sql/client'

async function bigTable(t, prefix, n) {
  const db = await connectPg(t)
  const table = uniqueName(prefix)
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, payload text NOT NULL, n int8)`)
  await db.query(`INSERT INTO ${T} SELECT g, repeat(md5(g::text), 3), g FROM generate_series(1, ${n}) g`)
  return { db, table, T, snapshot: async () => (await db.query(`SELECT * FROM ${T}`)).rows }
}

test('a multi-chunk snapshot, then a late joiner catches up over a long log', async (t) => {
  const { db, table, T, snapshot } = await bigTable(t, 'compat_big', 2000)
  const a = openShape(t, { table })
  assertRowsEqual(a, await initialRows(a, { timeout: 30000 }), await snapshot())

  // a long live log: many transactions touching many rows
  for (let i = 0; i < 20; i++) {
    await db.query(`UPDATE ${T} SET payload = md5(payload), n = n + ${i} WHERE id % 20 = ${i}`)
  }
  await db.query(`DELETE FROM ${T} WHERE id % 7 = 0`)
  await db.query(`INSERT INTO ${T} SELECT g, 'late ' || g, g FROM generate_series(5000, 5300) g`)
  const expected = await snapshot()
  await waitForRows(a, expected, { timeout: 30000, what: 'client A to follow a long log' })

  // B joins the same shape now: snapshot of the shape + its log, in chunks
  const b = openShape(t, { table })
  assertRowsEqual(b, await initialRows(b, { timeout: 30000 }), expected)
  const nonLive = b.log.filter((e) => !/[?&]live=true/.test(e.url) && e.status === 200)
  check(b, nonLive.length >= 2, `expected several non-live requests for a ~200 kB shape, got ${nonLive.length}`)
})

test('resume from a stored offset and handle', async (t) => {
  const { db, table, T, snapshot } = await bigTable(t, 'compat_resume', 50)
  const a = openShape(t, { table })
  assertRowsEqual(a, await initialRows(a), await snapshot())
  await db.query(`UPDATE ${T} SET n = -n WHERE id <= 10`)
  await waitForRows(a, await snapshot(), { what: 'client A to see the first update' })
  const offset = a.stream.lastOffset
  const handle = a.stream.shapeHandle
  const rows = new Map([...a.shape.currentValue].map(([k, v]) => [k, { ...v }]))

  // changes while "offline"
  await db.query(`UPDATE ${T} SET payload = 'while offline' WHERE id BETWEEN 5 AND 15`)
  await db.query(`DELETE FROM ${T} WHERE id = 20`)
  await db.query(`INSERT INTO ${T} VALUES (100, 'new while offline', 100)`)
  const expected = await snapshot()

  const ac = new AbortController()
  t.after(() => ac.abort())
  const log = []
  const stream = new ShapeStream({ url: SHAPE_URL, params: { table }, offset, handle, signal: ac.signal,
    backoffOptions: { initialDelay: 50, maxDelay: 1000, multiplier: 2, maxRetries: 8 },
    fetchClient: async (input, init) => {
      const res = await fetch(input, init)
      log.push(`${decodeURIComponent(String(input)).replace(SHAPE_URL, '')} → ${res.status}`)
      return res
    },
  })
  const sortById = (xs) => [...xs].sort((x, y) => x.id - y.id)
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`resumed stream did not converge\nrequests:\n${log.join('\n')}\nrows: ${JSON.stringify(sortById(rows.values()), (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`)), 15000)
    stream.subscribe((batch) => {
      for (const m of batch) {
        if (m.headers?.control === 'must-refetch') rows.clear()
        switch (m.headers?.operation) {
          case 'insert': rows.set(m.key, m.value); break
          case 'update': rows.set(m.key, { ...rows.get(m.key), ...m.value }); break
          case 'delete': rows.delete(m.key); break
        }
      }
      if (stream.isUpToDate) {
        try {
          assertRowsEqual(a, sortById(rows.values()), expected)
          clearTimeout(timer)
          resolve()
        } catch { /* not yet */ }
      }
    }, (e) => { clearTimeout(timer); reject(e) })
  })
  // resuming must not have restarted from scratch
  check(a, log.length > 0 && log[0].includes(`offset=${offset}`) && log[0].includes(`handle=${handle}`), `first resumed request was ${log[0]}`)
  check(a, !log.some((l) => l.includes('offset=-1')), `the resumed stream re-synced from scratch:\n${log.join('\n')}`)
  void diagnostics
})
