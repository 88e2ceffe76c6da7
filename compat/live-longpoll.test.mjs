// Live updates over long-polling: inserts, updates and deletes made in
// Postgres reach the Shape, which converges to the table.
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, waitForRows, check } from './helpers.mjs'

test('long-poll: insert, update, delete, multi-statement transaction, primary key change', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_lp')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, title text NOT NULL, n int8, done bool NOT NULL DEFAULT false)`)
  await db.query(`INSERT INTO ${T} SELECT g, 'item ' || g, g, false FROM generate_series(1, 5) g`)
  const snapshot = async () => (await db.query(`SELECT * FROM ${T}`)).rows

  const h = openShape(t, { table })
  assertRowsEqual(h, await initialRows(h), await snapshot())

  await db.query(`INSERT INTO ${T} VALUES (6, 'six', NULL, true)`)
  await waitForRows(h, await snapshot(), { what: 'insert' })

  await db.query(`UPDATE ${T} SET title = 'one, updated', done = true WHERE id = 1`)
  await waitForRows(h, await snapshot(), { what: 'update' })

  await db.query(`UPDATE ${T} SET n = NULL WHERE id = 3`)
  await waitForRows(h, await snapshot(), { what: 'update to NULL' })

  await db.query(`DELETE FROM ${T} WHERE id = 2`)
  await waitForRows(h, await snapshot(), { what: 'delete' })

  await db.query('BEGIN')
  await db.query(`INSERT INTO ${T} SELECT g, 'batch ' || g, g * 10, false FROM generate_series(100, 140) g`)
  await db.query(`UPDATE ${T} SET n = n + 1 WHERE id BETWEEN 100 AND 120`)
  await db.query(`DELETE FROM ${T} WHERE id IN (4, 130)`)
  await db.query('COMMIT')
  await waitForRows(h, await snapshot(), { what: 'a multi-statement transaction' })

  await db.query(`UPDATE ${T} SET id = 500, title = 'moved' WHERE id = 5`)
  await waitForRows(h, await snapshot(), { what: 'a primary-key change' })

  // several transactions in quick succession
  for (let i = 0; i < 10; i++) await db.query(`UPDATE ${T} SET n = ${i} WHERE id = 6`)
  await db.query(`INSERT INTO ${T} VALUES (7, 'seven', 7, false)`)
  await waitForRows(h, await snapshot(), { what: 'a burst of transactions' })

  // every live request of a long-polling client carries live=true and a cursor,
  // and no SSE was requested
  const live = h.log.filter((e) => /[?&]live=true/.test(e.url))
  check(h, live.length > 0, 'the client never issued a live request')
  check(h, live.every((e) => !/live_sse=true/.test(e.url)), 'a long-polling client issued an SSE request')

  // changes from the replication stream carry lsn/op_position/txids (§6.1)
  const changes = h.messages.filter((m) => m.headers?.operation && m.headers.lsn !== undefined)
  check(h, changes.length > 0, 'no live change message carried headers.lsn')
  const bad = changes.filter((m) => typeof m.headers.lsn !== 'string' || !/^\d+$/.test(m.headers.lsn) ||
    !Array.isArray(m.headers.txids) || !m.headers.txids.every((x) => typeof x === 'number') ||
    typeof m.headers.op_position !== 'number')
  check(h, bad.length === 0, `live changes with malformed lsn/txids/op_position headers: ${JSON.stringify(bad.slice(0, 3).map((m) => m.headers))}`)

  // what pglite-sync / TanStack DB build on (§15.3-5): every up-to-date carries a
  // decimal-string global_last_seen_lsn, the last change of each transaction has
  // last: true, snapshot-end carries xmin/xmax/xip_list as strings
  const utd = h.messages.filter((m) => m.headers?.control === 'up-to-date')
  const badUtd = utd.filter((m) => typeof m.headers.global_last_seen_lsn !== 'string' || !/^\d+$/.test(m.headers.global_last_seen_lsn))
  check(h, badUtd.length === 0, `up-to-date messages without a decimal-string global_last_seen_lsn: ${JSON.stringify(badUtd.slice(0, 3))}`)
  const lastOfTx = changes.filter((m, i) => changes[i + 1]?.headers.lsn !== m.headers.lsn)
  const missingLast = lastOfTx.filter((m) => m.headers.last !== true)
  check(h, missingLast.length === 0, `last change of a transaction without last: true: ${JSON.stringify(missingLast.slice(0, 3).map((m) => m.headers))}`)
  const se = h.messages.filter((m) => m.headers?.control === 'snapshot-end')
  check(h, se.length === 1 && ['xmin', 'xmax'].every((k) => /^\d+$/.test(se[0].headers[k])) && Array.isArray(se[0].headers.xip_list) &&
    se[0].headers.xip_list.every((x) => typeof x === 'string'), `bad snapshot-end: ${JSON.stringify(se)}`)
})

test('long-poll: the stream stays live across idle long-poll timeouts', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_idle')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, v text)`)
  await db.query(`INSERT INTO ${T} VALUES (1, 'a')`)
  const h = openShape(t, { table })
  await initialRows(h)
  // wait (without sleeping) for at least two live requests to complete with no data,
  // i.e. the server's long-poll timeout answers
  await new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error('no idle long-poll answers within 12 s (is VOLT_LONG_POLL_TIMEOUT honoured?)')), 12000)
    const iv = setInterval(() => {
      const done = h.log.filter((e) => /[?&]live=true/.test(e.url) && e.status === 200 && e.ended !== undefined)
      if (done.length >= 2 || h.errors.length) {
        clearInterval(iv)
        clearTimeout(deadline)
        resolve()
      }
    }, 50)
  }).catch((e) => check(h, false, e.message))
  check(h, h.errors.length === 0, 'stream failed during idle long-polls')
  await db.query(`INSERT INTO ${T} VALUES (2, 'b')`)
  await waitForRows(h, (await db.query(`SELECT * FROM ${T}`)).rows, { what: 'an insert after idle timeouts' })
})
