// Subset snapshots (`log: 'changes_only'` + Shape.requestSnapshot), which
// TanStack DB's progressive/on-demand modes rely on (protocol.md §9, §15.10).
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, waitForRows, initialRows, assertRowsEqual, check } from './helpers.mjs'

test('changes_only shape: empty initial rows, then live changes of rows it has seen', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_co')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, v text)`)
  await db.query(`INSERT INTO ${T} VALUES (1, 'existing')`)
  const h = openShape(t, { table }, { log: 'changes_only' })
  assertRowsEqual(h, await initialRows(h), [])
  await db.query(`INSERT INTO ${T} VALUES (2, 'new')`)
  await db.query(`UPDATE ${T} SET v = 'changed' WHERE id IN (1, 2)`)
  // only rows inserted after the shape started are materialised in changes_only mode
  await waitForRows(h, (await db.query(`SELECT * FROM ${T} WHERE id = 2`)).rows, { what: 'changes_only live changes' })
})

for (const method of ['GET', 'POST']) {
  test(`requestSnapshot (${method}) on a changes_only shape loads the subset, then follows it live`, async (t) => {
    const db = await connectPg(t)
    const table = uniqueName('compat_subset')
    const T = ident(table)
    await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, owner text, n int4)`)
    await db.query(`INSERT INTO ${T} SELECT g, (ARRAY['alice','bob'])[1 + g % 2], g FROM generate_series(1, 40) g`)
    const h = openShape(t, { table }, { log: 'changes_only', subsetMethod: method })
    await initialRows(h)
    try {
      await h.shape.requestSnapshot({ where: 'owner = $1', params: { 1: 'alice' }, orderBy: 'n DESC', limit: 5 })
    } catch (e) {
      check(h, false, `requestSnapshot failed: ${e?.stack ?? e}`)
    }
    const first = (await db.query(`SELECT * FROM ${T} WHERE owner = 'alice' ORDER BY n DESC LIMIT 5`)).rows
    await waitForRows(h, first, { what: 'the requested subset snapshot' })
    await db.query(`UPDATE ${T} SET n = n * 100 WHERE id = ${first[0].id}`)
    const { rows: moved } = await db.query(`SELECT * FROM ${T} WHERE id = ANY($1)`, [first.map((r) => r.id)])
    await waitForRows(h, moved, { what: 'a live update of a row loaded by the subset snapshot' })

    // a second subset (with limit + offset) adds to the first one
    try {
      await h.shape.requestSnapshot({ where: 'owner = $1', params: { 1: 'bob' }, orderBy: 'id', limit: 3, offset: 2 })
    } catch (e) {
      check(h, false, `second requestSnapshot failed: ${e?.stack ?? e}`)
    }
    const bob = (await db.query(`SELECT id FROM ${T} WHERE owner = 'bob' ORDER BY id LIMIT 3 OFFSET 2`)).rows.map((r) => r.id)
    const { rows: union } = await db.query(`SELECT * FROM ${T} WHERE id = ANY($1)`, [[...first.map((r) => r.id), ...bob]])
    await waitForRows(h, union, { what: 'the union of two subset snapshots' })
  })
}

// Note: with more than one requestSnapshot on the same stream, writes can be
// lost by the client itself — it moves its stream offset to every subset
// response's electric-offset (which Electric also sets to the end of the
// log), skipping log entries for rows loaded by *earlier* subsets. So each
// stream here requests exactly one subset.
test('a subset snapshot racing with writes: no change is lost (snapshot xmin/xmax/xip vs txids)', async (t) => {
  const db = await connectPg(t)
  const writer = await connectPg(t)
  const table = uniqueName('compat_subrace')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, grp int4, n int4)`)
  await db.query(`INSERT INTO ${T} SELECT g, g % 4, 0 FROM generate_series(1, 40) g`)
  const shapes = [0, 1, 2, 3].map((grp) => ({ grp, h: openShape(t, { table }, { log: 'changes_only' }) }))
  for (const { h } of shapes) await initialRows(h)

  let writing = true
  const writes = (async () => {
    for (let i = 0; writing || i < 4; i++) {
      await writer.query('BEGIN')
      await writer.query(`UPDATE ${T} SET n = n + 1 WHERE grp = $1`, [i % 4])
      await writer.query('COMMIT')
    }
  })()
  try {
    await Promise.all(shapes.map(({ h, grp }) => h.shape.requestSnapshot({ where: 'grp = $1', params: { 1: String(grp) } })
      .catch((e) => check(h, false, `requestSnapshot failed: ${e?.stack ?? e}`))))
  } finally {
    writing = false
    await writes
  }
  for (const { h, grp } of shapes) {
    await waitForRows(h, (await db.query(`SELECT * FROM ${T} WHERE grp = $1`, [grp])).rows, { what: `group ${grp} to reflect every write` })
  }
})
