// volt decides in-process whether a replicated row belongs to a shape. For a
// set of where clauses, each shape must keep agreeing with Postgres' own
// evaluation of the very same clause while rows change under it.
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, waitForRows, check } from './helpers.mjs'

const CLAUSES = [
  [`n BETWEEN 3 AND 7`],
  [`n > $1 AND n <= $2`, ['2', '8']],
  [`title LIKE 'a%'`],
  [`title ILIKE '%B%'`],
  [`owner IN ('alice', 'carol')`],
  [`owner IS NULL OR owner <> 'bob'`],
  [`done`],
  [`done IS NOT TRUE`],
  [`ts > '2024-06-01 00:00:00+00'`],
  [`d >= '2024-03-01'::date AND d < '2024-09-01'::date`],
  [`tags @> '{x}'`],
  [`'y' = ANY(tags)`],
  [`coalesce(score, 0) > 1.5`],
  [`lower(title) = 'abc'`],
  [`NOT (n > 5) OR owner IS NULL`],
  [`big > 9007199254740993`],
  [`num >= 2.5`],
  [`u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`],
  [`n + 1 = 5 OR n * 2 = 4`],
  [`title || owner = 'abcalice'`],
]

test('where clauses evaluated by volt agree with Postgres as rows move in and out', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_eval')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (
    id int4 PRIMARY KEY, n int4, title text, owner text, done bool, ts timestamptz, d date,
    tags text[], score float8, big int8, num numeric, u uuid)`)
  const owners = `(ARRAY['alice','bob','carol',NULL])[1 + g % 4]`
  const titles = `(ARRAY['abc','Abd','xbz','ABC','b'])[1 + g % 5]`
  await db.query(`INSERT INTO ${T}
    SELECT g, g % 11, ${titles}, ${owners}, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
           '2024-01-01 00:00:00+00'::timestamptz + (g * 17 || ' days')::interval,
           '2024-01-01'::date + g * 13,
           (CASE g % 4 WHEN 0 THEN '{x}' WHEN 1 THEN '{y,z}' WHEN 2 THEN '{x,y}' ELSE '{}' END)::text[],
           CASE WHEN g % 5 = 0 THEN NULL ELSE g / 4.0 END,
           9007199254740990 + g % 6, g / 2.0,
           CASE WHEN g % 4 = 0 THEN 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid ELSE gen_random_uuid() END
    FROM generate_series(1, 40) g`)

  const shapes = CLAUSES.map(([where, params]) => ({
    where,
    params,
    h: openShape(t, params ? { table, where, params } : { table, where }),
    expected: async () => (await db.query(`SELECT * FROM ${T} WHERE ${where}`, params ?? [])).rows,
  }))
  for (const s of shapes) {
    try {
      assertRowsEqual(s.h, await initialRows(s.h), await s.expected())
    } catch (e) {
      e.message = `where ${s.where}: initial rows differ\n${e.message}`
      throw e
    }
  }

  // rows move in and out of every clause
  for (let round = 1; round <= 3; round++) {
    await db.query('BEGIN')
    await db.query(`UPDATE ${T} SET n = (n * 7 + ${round}) % 11, done = NOT done WHERE id % 3 = ${round % 3}`)
    await db.query(`UPDATE ${T} SET title = (ARRAY['abc','Abd','xbz','ABC','b'])[1 + (id + ${round}) % 5],
                      owner = (ARRAY['alice','bob','carol',NULL])[1 + (id + ${round}) % 4] WHERE id % 2 = ${round % 2}`)
    await db.query(`UPDATE ${T} SET ts = ts + interval '100 days', d = d + 50, tags = tags || ARRAY['x'],
                      score = coalesce(score, 0) + 0.75, big = big + 1, num = num + 0.5 WHERE id % 4 = ${round % 4}`)
    await db.query('COMMIT')
    await db.query(`DELETE FROM ${T} WHERE id = ${round * 7}`)
    await db.query(`INSERT INTO ${T} VALUES (${100 + round}, 4, 'abc', 'alice', true, '2025-01-01', '2024-05-05', '{x,y}', 2.0, 9007199254740999, 3, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')`)
  }
  for (const s of shapes) {
    await waitForRows(s.h, await s.expected(), { what: `the shape "${s.where}" to agree with Postgres` })
    const live = s.h.messages.filter((m) => m.headers?.operation && m.headers.lsn !== undefined)
    check(s.h, live.length > 0, `setup: the shape "${s.where}" saw no live change, so it tested nothing`)
  }
})

test('a table without a primary key: every column is part of the key', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_nopk')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (a int4, b text, c bool)`)
  await db.query(`INSERT INTO ${T} VALUES (1, 'x', true), (2, 'y', NULL), (3, NULL, false)`)
  const all = async () => (await db.query(`SELECT * FROM ${T}`)).rows
  const h = openShape(t, { table })
  const key = ['a', 'b', 'c']
  assertRowsEqual(h, await initialRows(h), await all(), key)
  await db.query(`UPDATE ${T} SET b = 'changed' WHERE a = 1`)
  await db.query(`DELETE FROM ${T} WHERE a = 3`)
  await db.query(`INSERT INTO ${T} VALUES (4, 'z', NULL)`)
  await waitForRows(h, await all(), { key, what: 'changes on a table without a primary key' })
})

test('unchanged TOASTed values: replica=full updates still carry them', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_toast')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int4 PRIMARY KEY, big text, n int4)`)
  // ~64 kB of incompressible text per row, stored out of line
  await db.query(`INSERT INTO ${T} SELECT g, (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 2000)), g FROM generate_series(1, 3) g`)
  const all = async () => (await db.query(`SELECT * FROM ${T}`)).rows
  const full = openShape(t, { table, replica: 'full' })
  const dflt = openShape(t, { table })
  assertRowsEqual(full, await initialRows(full), await all())
  assertRowsEqual(dflt, await initialRows(dflt), await all())
  await db.query(`UPDATE ${T} SET n = n + 10`)
  const expected = await all()
  await waitForRows(full, expected, { what: 'replica=full updates next to an unchanged TOASTed column' })
  await waitForRows(dflt, expected, { what: 'replica=default updates next to an unchanged TOASTed column' })
  const upd = full.messages.filter((m) => m.headers?.operation === 'update')
  assertRowsEqual(full, upd.map((m) => m.value), expected)
})
