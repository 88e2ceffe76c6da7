// 409 must-refetch: after the shape is deleted on the server (DELETE
// /v1/shape, volt runs with shape deletion enabled) or the table is
// truncated, the client must re-sync from scratch and end equal to Postgres.
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, waitForRows, check, SHAPE_URL } from './helpers.mjs'

async function setup(t, prefix) {
  const db = await connectPg(t)
  const table = uniqueName(prefix)
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, v text, n int8)`)
  await db.query(`INSERT INTO ${T} SELECT g, 'v' || g, g FROM generate_series(1, 20) g`)
  const snapshot = async () => (await db.query(`SELECT * FROM ${T}`)).rows
  return { db, table, T, snapshot }
}

async function waitForMustRefetch(h, timeout = 15000) {
  const seen = () => h.messages.some((m) => m.headers?.control === 'must-refetch')
  if (seen()) return
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsub()
      reject(new Error(`no must-refetch reached the client within ${timeout} ms`))
    }, timeout)
    const unsub = h.stream.subscribe(() => {
      if (seen()) {
        clearTimeout(timer)
        unsub()
        resolve()
      }
    }, (e) => {
      clearTimeout(timer)
      unsub()
      reject(e)
    })
  }).catch((e) => check(h, false, e.message))
}

test('DELETE /v1/shape?table=… → 409 → the client re-syncs and equals Postgres', async (t) => {
  const { db, table, T, snapshot } = await setup(t, 'compat_del')
  const h = openShape(t, { table })
  assertRowsEqual(h, await initialRows(h), await snapshot())
  const oldHandle = h.stream.shapeHandle
  check(h, !!oldHandle, 'no shape handle after the initial sync')

  const res = await fetch(`${SHAPE_URL}?table=${encodeURIComponent(table)}`, { method: 'DELETE' })
  const body = await res.text()
  check(h, res.status === 202, `DELETE /v1/shape?table=${table} answered ${res.status} ${body}, want 202`)

  // changes made after the deletion must show up in the re-synced shape
  await db.query(`INSERT INTO ${T} VALUES (100, 'after delete', 100)`)
  await db.query(`UPDATE ${T} SET v = 'changed after delete' WHERE id = 1`)
  await db.query(`DELETE FROM ${T} WHERE id = 2`)

  await waitForMustRefetch(h)
  await waitForRows(h, await snapshot(), { what: 're-sync after DELETE' })
  check(h, h.stream.shapeHandle !== oldHandle, `the handle did not change after the 409 (still ${oldHandle})`)
  const conflict = h.log.find((e) => e.status === 409)
  check(h, conflict !== undefined, 'no 409 response was seen')
  check(h, !!conflict.headers['electric-handle'] && conflict.headers['electric-handle'] !== oldHandle,
    `409 without a new electric-handle header: ${JSON.stringify(conflict.headers)}`)

  // and the new shape is live
  await db.query(`INSERT INTO ${T} VALUES (101, 'live after re-sync', 101)`)
  await waitForRows(h, await snapshot(), { what: 'a live change after the re-sync' })
})

test('DELETE /v1/shape?handle=… → 409 → the client re-syncs and equals Postgres', async (t) => {
  const { db, table, T, snapshot } = await setup(t, 'compat_delh')
  const h = openShape(t, { table, where: 'n > 5' })
  const expected = async () => (await db.query(`SELECT * FROM ${T} WHERE n > 5`)).rows
  assertRowsEqual(h, await initialRows(h), await expected())
  const oldHandle = h.stream.shapeHandle

  const res = await fetch(`${SHAPE_URL}?handle=${encodeURIComponent(oldHandle)}`, { method: 'DELETE' })
  const body = await res.text()
  check(h, res.status === 202, `DELETE /v1/shape?handle=${oldHandle} answered ${res.status} ${body}, want 202`)
  await db.query(`UPDATE ${T} SET n = 0 WHERE id = 10`)
  await db.query(`INSERT INTO ${T} VALUES (102, 'x', 102)`)
  await waitForMustRefetch(h)
  await waitForRows(h, await expected(), { what: 're-sync after DELETE by handle' })
  check(h, h.stream.shapeHandle !== oldHandle, `the handle did not change after the 409 (still ${oldHandle})`)
})

test('TRUNCATE → 409 → the client re-syncs and equals Postgres', async (t) => {
  const { db, table, T, snapshot } = await setup(t, 'compat_trunc')
  const h = openShape(t, { table })
  assertRowsEqual(h, await initialRows(h), await snapshot())
  const oldHandle = h.stream.shapeHandle

  await db.query(`TRUNCATE ${T}`)
  await db.query(`INSERT INTO ${T} VALUES (1, 'after truncate', 1), (2, 'b', 2)`)
  await waitForRows(h, await snapshot(), { what: 're-sync after TRUNCATE' })
  check(h, h.messages.some((m) => m.headers?.control === 'must-refetch'), 'TRUNCATE did not produce a must-refetch')
  check(h, h.stream.shapeHandle !== oldHandle, `the handle did not change after TRUNCATE (still ${oldHandle})`)
})

test('ALTER TABLE ADD/DROP COLUMN → 409 → the client re-syncs with the new columns', async (t) => {
  const { db, table, T, snapshot } = await setup(t, 'compat_ddl')
  const h = openShape(t, { table })
  assertRowsEqual(h, await initialRows(h), await snapshot())
  const oldHandle = h.stream.shapeHandle

  await db.query(`ALTER TABLE ${T} ADD COLUMN extra text DEFAULT 'd'`)
  await db.query(`INSERT INTO ${T} (id, v, n, extra) VALUES (200, 'with extra', 200, 'e')`)
  await waitForRows(h, await snapshot(), { what: 're-sync after ADD COLUMN' })
  check(h, h.stream.shapeHandle !== oldHandle, `the handle did not change after ADD COLUMN (still ${oldHandle})`)

  const handle2 = h.stream.shapeHandle
  await db.query(`ALTER TABLE ${T} DROP COLUMN v`)
  await db.query(`UPDATE ${T} SET n = -n WHERE id = 1`)
  await waitForRows(h, await snapshot(), { what: 're-sync after DROP COLUMN' })
  check(h, h.stream.shapeHandle !== handle2, `the handle did not change after DROP COLUMN (still ${handle2})`)
})
