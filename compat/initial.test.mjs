// Initial sync: a Shape over a pre-populated table must equal the table as
// Postgres returns it.
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, check, waitForRows } from './helpers.mjs'

test('initial sync of a populated table equals Postgres', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_initial')
  await db.query(`CREATE TABLE ${ident(table)} (
    id int4 PRIMARY KEY,
    big int8 NOT NULL,
    title text NOT NULL,
    done bool,
    meta json,
    score float8
  )`)
  await db.query(`INSERT INTO ${ident(table)}
    SELECT g, g * 1000000000000::int8, 'row ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
           CASE WHEN g % 5 = 0 THEN NULL ELSE json_build_object('g', g, 'tags', json_build_array('a', g)) END,
           g / 7.0
    FROM generate_series(1, 300) g`)

  const h = openShape(t, { table })
  const rows = await initialRows(h)
  const { rows: expected } = await db.query(`SELECT * FROM ${ident(table)}`)
  check(h, expected.length === 300, 'setup: expected 300 rows in Postgres')
  assertRowsEqual(h, rows, expected)
  // the parsed types are part of the contract
  const r = rows.find((x) => x.id === 2)
  check(h, typeof r?.big === 'bigint' && typeof r.id === 'number' && r.done === true && typeof r.meta === 'object',
    `client did not parse int8/int4/bool/json as expected: ${JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`)
  // the initial snapshot ends with snapshot-end, then up-to-date
  const controls = h.messages.filter((m) => m.headers?.control).map((m) => m.headers.control)
  check(h, controls.includes('snapshot-end'), `no snapshot-end control message was delivered (saw ${JSON.stringify(controls)})`)
  check(h, controls.at(-1) === 'up-to-date', `last control message is ${controls.at(-1)}, want up-to-date`)
})

test('initial sync of an empty table, then the first insert arrives', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_empty')
  await db.query(`CREATE TABLE ${ident(table)} (id int8 PRIMARY KEY, name text)`)

  const h = openShape(t, { table })
  const rows = await initialRows(h)
  assertRowsEqual(h, rows, [])

  await db.query(`INSERT INTO ${ident(table)} VALUES (1, 'first'), (2, NULL)`)
  const { rows: expected } = await db.query(`SELECT * FROM ${ident(table)}`)
  await waitForRows(h, expected, { what: 'the first inserts to arrive' })
})

test('composite primary key and quoted table name', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('Compat Quoted')  // lower-cased by uniqueName; add capitals and a space below
  const name = `Mixed ${table}`.slice(0, 63)
  await db.query(`CREATE TABLE ${ident(name)} (a text, b int4, val text, PRIMARY KEY (a, b))`)
  await db.query(`INSERT INTO ${ident(name)} VALUES ('x/y', 1, 'one'), ('x', 2, 'two'), ('z"q', 3, NULL)`)

  const h = openShape(t, { table: ident(name) })
  const rows = await initialRows(h)
  const { rows: expected } = await db.query(`SELECT * FROM ${ident(name)}`)
  assertRowsEqual(h, rows, expected, ['a', 'b'])

  await db.query(`UPDATE ${ident(name)} SET val = 'changed' WHERE a = 'x/y'`)
  await db.query(`DELETE FROM ${ident(name)} WHERE b = 2`)
  await db.query(`INSERT INTO ${ident(name)} VALUES ('new', 4, 'four')`)
  const { rows: expected2 } = await db.query(`SELECT * FROM ${ident(name)}`)
  await waitForRows(h, expected2, { key: ['a', 'b'], what: 'changes on a composite-key table' })
})
