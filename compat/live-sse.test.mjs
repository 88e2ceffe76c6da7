// Live updates over Server-Sent Events (ShapeStream option `liveSse`, the
// name used by @electric-sql/client 1.5.x; `experimentalLiveSse` is its
// deprecated alias).
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, waitForRows, check, waitUntil, parseDurationMs } from './helpers.mjs'

test('SSE: live inserts, updates and deletes arrive over an event stream', async (t) => {
  // the client warns (console.warn) when it gives up on SSE and falls back to long polling
  const warnings = []
  const origWarn = console.warn
  console.warn = (...args) => {
    warnings.push(args.map(String).join(' '))
    origWarn(...args)
  }
  t.after(() => {
    console.warn = origWarn
  })

  const db = await connectPg(t)
  const table = uniqueName('compat_sse')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, title text, n int8, flag bool)`)
  await db.query(`INSERT INTO ${T} SELECT g, 'item ' || g, g, g % 2 = 0 FROM generate_series(1, 10) g`)
  const snapshot = async () => (await db.query(`SELECT * FROM ${T}`)).rows

  const h = openShape(t, { table }, { liveSse: true })
  assertRowsEqual(h, await initialRows(h), await snapshot())

  await db.query(`INSERT INTO ${T} VALUES (11, 'eleven', 11, true)`)
  await waitForRows(h, await snapshot(), { what: 'insert over SSE' })

  await db.query(`UPDATE ${T} SET title = 'updated "quoted"', flag = NOT flag WHERE id <= 3`)
  await waitForRows(h, await snapshot(), { what: 'update over SSE' })

  await db.query(`DELETE FROM ${T} WHERE id IN (4, 5)`)
  await waitForRows(h, await snapshot(), { what: 'delete over SSE' })

  await db.query('BEGIN')
  await db.query(`INSERT INTO ${T} SELECT g, 'tx ' || g, g, false FROM generate_series(20, 30) g`)
  await db.query(`UPDATE ${T} SET n = -n WHERE id BETWEEN 20 AND 25`)
  await db.query(`DELETE FROM ${T} WHERE id = 30`)
  await db.query('COMMIT')
  await waitForRows(h, await snapshot(), { what: 'a multi-statement transaction over SSE' })

  for (let i = 0; i < 5; i++) await db.query(`UPDATE ${T} SET n = ${i} WHERE id = 1`)
  await waitForRows(h, await snapshot(), { what: 'a burst of transactions over SSE' })

  // volt closes an SSE stream after its SSE timeout (the Go driver sets
  // VOLT_SSE_TIMEOUT=3s and passes the value on); the client reconnects from
  // "<global_last_seen_lsn>_0" and must keep converging.
  const sseTimeout = parseDurationMs(process.env.VOLT_SSE_TIMEOUT, 60000)
  const isSse = (e) => /[?&]live_sse=true/.test(e.url)
  const firstOpen = h.log.filter(isSse).at(-1)
  await waitUntil(h, () => firstOpen.ended !== undefined && h.log.some((e) => isSse(e) && e.n > firstOpen.n), {
    timeout: sseTimeout + 10000,
    what: `volt to close the SSE stream after its SSE timeout (${sseTimeout} ms) and the client to reconnect`,
  })
  await db.query(`INSERT INTO ${T} VALUES (40, 'after reconnect', 40, false)`)
  await db.query(`UPDATE ${T} SET title = 'after reconnect' WHERE id = 1`)
  await waitForRows(h, await snapshot(), { what: 'changes after an SSE reconnect' })

  const sse = h.log.filter((e) => /[?&]live_sse=true/.test(e.url))
  check(h, sse.length > 0, 'the client never requested live_sse=true')
  check(h, sse.some((e) => e.status === 200 && e.sse), 'no SSE request was answered with 200 text/event-stream')
  const fellBack = warnings.filter((w) => /Falling back to long polling/i.test(w))
  check(h, fellBack.length === 0, `the client fell back from SSE to long polling: ${fellBack[0]}`)
  const livePolls = h.log.filter((e) => /[?&]live=true/.test(e.url) && !/live_sse=true/.test(e.url))
  check(h, livePolls.length === 0, `the SSE client issued ${livePolls.length} live long-poll request(s) (it fell back from SSE)`)
})
