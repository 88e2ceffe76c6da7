// Shape definitions beyond a plain table: where + params, a column subset,
// and replica=full.
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, waitForRows, check, show } from './helpers.mjs'

async function ownersTable(t) {
  const db = await connectPg(t)
  const table = uniqueName('compat_where')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, owner text NOT NULL, title text, n int4, secret text)`)
  await db.query(`INSERT INTO ${T}
    SELECT g, (ARRAY['alice','bob','carol'])[1 + g % 3], 'title ' || g, g, 's' || g FROM generate_series(1, 30) g`)
  return { db, table, T }
}

test('where with params (object form): rows move in and out of the shape', async (t) => {
  const { db, table, T } = await ownersTable(t)
  const expected = async () => (await db.query(`SELECT * FROM ${T} WHERE owner = $1`, ['alice'])).rows

  const h = openShape(t, { table, where: 'owner = $1', params: { 1: 'alice' } })
  assertRowsEqual(h, await initialRows(h), await expected())

  await db.query(`INSERT INTO ${T} VALUES (100, 'alice', 'new alice row', 1, 'x'), (101, 'bob', 'new bob row', 2, 'y')`)
  await waitForRows(h, await expected(), { what: 'inserts inside and outside the where' })

  await db.query(`UPDATE ${T} SET owner = 'alice' WHERE id = 101`) // moves in
  await waitForRows(h, await expected(), { what: 'a row moving into the shape' })

  await db.query(`UPDATE ${T} SET owner = 'bob' WHERE id = 100`) // moves out
  await waitForRows(h, await expected(), { what: 'a row moving out of the shape' })

  await db.query(`UPDATE ${T} SET title = 'renamed' WHERE owner = 'alice' AND id < 10`)
  await db.query(`UPDATE ${T} SET title = 'not visible' WHERE owner = 'bob'`)
  await db.query(`DELETE FROM ${T} WHERE owner = 'alice' AND id > 20 AND id < 100`)
  await db.query(`DELETE FROM ${T} WHERE owner = 'carol' AND id > 20`)
  await waitForRows(h, await expected(), { what: 'updates and deletes inside and outside the where' })
})

test('where with params (array form) and a quote in the parameter value', async (t) => {
  const { db, table, T } = await ownersTable(t)
  await db.query(`INSERT INTO ${T} VALUES (200, 'o''brien', 'q', 50, 'z'), (201, 'o''brien', 'q', 1, 'z')`)
  const expected = async () => (await db.query(`SELECT * FROM ${T} WHERE owner = $1 AND n > $2`, ["o'brien", 5])).rows

  const h = openShape(t, { table, where: 'owner = $1 AND n > $2', params: ["o'brien", '5'] })
  assertRowsEqual(h, await initialRows(h), await expected())
  check(h, (await expected()).length === 1, 'setup: one matching row expected')

  await db.query(`UPDATE ${T} SET n = 10 WHERE id = 201`)
  await db.query(`INSERT INTO ${T} VALUES (202, 'o''brien', 'r', 99, 'w')`)
  await waitForRows(h, await expected(), { what: 'changes matched by a two-parameter where' })
})

test('columns subset', async (t) => {
  const { db, table, T } = await ownersTable(t)
  const expected = async () => (await db.query(`SELECT id, title, n FROM ${T}`)).rows

  const h = openShape(t, { table, columns: ['id', 'title', 'n'] })
  assertRowsEqual(h, await initialRows(h), await expected())

  await db.query(`UPDATE ${T} SET secret = 'changed only in an unselected column' WHERE id = 1`)
  await db.query(`UPDATE ${T} SET title = 'changed title', secret = 'also' WHERE id = 2`)
  await db.query(`INSERT INTO ${T} VALUES (300, 'dave', 'three hundred', 300, 'hidden')`)
  await db.query(`DELETE FROM ${T} WHERE id = 3`)
  await waitForRows(h, await expected(), { what: 'changes on a column subset' })

  const leaked = h.messages.filter((m) => m.value && Object.keys(m.value).some((c) => !['id', 'title', 'n'].includes(c)))
  check(h, leaked.length === 0, `messages carry unselected columns: ${show(leaked.slice(0, 3))}`)
})

test('replica=full: updates carry full rows and old values, deletes carry the full old row', async (t) => {
  const { db, table, T } = await ownersTable(t)
  const all = async () => (await db.query(`SELECT * FROM ${T}`)).rows

  const h = openShape(t, { table, replica: 'full' })
  assertRowsEqual(h, await initialRows(h), await all())

  const before = (await db.query(`SELECT * FROM ${T} WHERE id = 7`)).rows[0]
  await db.query(`UPDATE ${T} SET title = 'full replica update' WHERE id = 7`)
  const after = (await db.query(`SELECT * FROM ${T} WHERE id = 7`)).rows[0]
  const deleted = (await db.query(`SELECT * FROM ${T} WHERE id = 8`)).rows[0]
  await db.query(`DELETE FROM ${T} WHERE id = 8`)
  await waitForRows(h, await all(), { what: 'replica=full changes' })

  const upd = h.messages.find((m) => m.headers?.operation === 'update' && m.value?.id === 7)
  check(h, upd !== undefined, 'no update message for id 7')
  assertRowsEqual(h, [upd.value], [after])
  assertRowsEqual(h, [upd.old_value ?? {}], [{ title: before.title }], ['title'])

  const del = h.messages.find((m) => m.headers?.operation === 'delete' && m.value?.id === 8)
  check(h, del !== undefined, 'no delete message for id 8')
  assertRowsEqual(h, [del.value], [deleted])
})

test('replica=default: updates carry only the primary key and changed columns', async (t) => {
  const { db, table, T } = await ownersTable(t)
  const all = async () => (await db.query(`SELECT * FROM ${T}`)).rows
  const h = openShape(t, { table })
  await initialRows(h)
  await db.query(`UPDATE ${T} SET title = 'default replica update' WHERE id = 9`)
  await waitForRows(h, await all(), { what: 'a replica=default update' })
  const upd = h.messages.find((m) => m.headers?.operation === 'update' && m.value?.id === 9)
  check(h, upd !== undefined, 'no update message for id 9')
  const { rows } = await db.query(`SELECT id, title FROM ${T} WHERE id = 9`)
  assertRowsEqual(h, [upd.value], rows)
})
