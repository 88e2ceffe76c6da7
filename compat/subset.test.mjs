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

// volt does not implement subset snapshots yet: these are marked `todo` so
// they run and print their failure without failing the suite. Drop the
// `todo` option once volt serves subset requests.
const SUBSET_TODO = 'volt ignores subset__* params / the POST body and answers with the normal shape log (protocol.md §9)'

for (const method of ['GET', 'POST']) {
  test(`requestSnapshot (${method}) on a changes_only shape loads the subset, then follows it live`, { todo: SUBSET_TODO }, async (t) => {
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
  })
}
