// The official @electric-sql/client's ShapeStream on a subquery shape (volt
// subqueries on by default, subqueries.md): it passes volt's move events
// through to subscribers untouched. A subscriber sees every row with `tags`
// and `active_conditions`, a `move-out` event with `patterns` matching the
// tags of the rows that leave, and a `move-in` event followed by the new rows
// (`is_move_in`, no `txids`) and a `snapshot-end`. Rows applied the way §9
// describes (what TanStack's collection does) end equal to Postgres. The
// pinned client's `Shape` helper ignores move events (it keeps moved-out
// rows), so only its move-in rows are checked.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isDeepStrictEqual } from 'node:util'
import { connectPg, uniqueName, ident, openShape, initialRows, waitUntil, check, isChangeMessage, show } from './helpers.mjs'

// applyMoves applies a subscriber's messages as subqueries.md §9 says: rows
// with their tags and active_conditions; a move-out clears the condition at
// the pattern's position for the rows whose tag has the value there, and
// drops a row no disjunct of which still holds; a move-in sets it again.
function applyMoves(messages) {
  const rows = new Map()
  const slots = (tag) => tag.split('/')
  const holds = (r) => r.tags.some((tag) => slots(tag).every((v, pos) => v === '' || r.ac[pos]))
  for (const m of messages) {
    if (isChangeMessage(m)) {
      if (m.headers.operation === 'delete') {
        rows.delete(m.key)
        continue
      }
      const prev = rows.get(m.key)
      const tags = new Set(prev?.tags ?? [])
      for (const tag of m.headers.removed_tags ?? []) tags.delete(tag)
      for (const tag of m.headers.tags ?? []) tags.add(tag)
      rows.set(m.key, { value: { ...prev?.value, ...m.value }, tags: [...tags], ac: m.headers.active_conditions ?? prev?.ac })
      continue
    }
    const event = m.headers.event
    if (event !== 'move-out' && event !== 'move-in') continue
    for (const [key, r] of rows) {
      for (const { pos, value } of m.headers.patterns) {
        if (r.tags.some((tag) => slots(tag)[pos] === value)) r.ac[pos] = event === 'move-in'
      }
      if (!holds(r)) rows.delete(key)
    }
  }
  return [...rows.values()].map((r) => r.value)
}

const byID = (rows) => [...rows].sort((a, b) => a.id - b.id)

test('ShapeStream on a subquery shape: move-out and move-in events reach subscribers with patterns, tags and active_conditions', async (t) => {
  const db = await connectPg(t)
  const schema = uniqueName('sqm_ss')
  const S = ident(schema)
  await db.query(`CREATE SCHEMA ${S}`)
  t.after(() => db.query(`DROP SCHEMA ${S} CASCADE`).catch(() => {}))
  await db.query(`CREATE TABLE ${S}.parents (id int4 PRIMARY KEY, active bool NOT NULL)`)
  await db.query(`CREATE TABLE ${S}.children (id int4 PRIMARY KEY, "parentId" int4 NOT NULL, label text, big int8)`)
  await db.query(`INSERT INTO ${S}.parents VALUES (1, true), (2, false), (3, true)`)
  await db.query(`INSERT INTO ${S}.children SELECT g, 1 + g % 3, 'c' || g, g * 10000000000 FROM generate_series(1, 12) g`)
  const where = `"parentId" IN (SELECT id FROM ${S}.parents WHERE active)`
  const expected = async () => (await db.query(`SELECT * FROM ${S}.children WHERE ${where}`)).rows

  const h = openShape(t, { table: `${schema}.children`, where })
  const first = await initialRows(h)
  assert.deepEqual(byID(first), byID(await expected()))
  const rowsOf = (parent) => h.messages.filter((m) => isChangeMessage(m) && m.value.parentId === parent)
  const snapshotRows = h.messages.filter(isChangeMessage)
  check(h, snapshotRows.length > 0, 'no snapshot rows')
  for (const m of snapshotRows) {
    check(h, Array.isArray(m.headers.tags) && m.headers.tags.length === 1 && /^[^/]+$/.test(m.headers.tags[0]), `snapshot row without one one-slot tag: ${show(m)}`)
    check(h, isDeepStrictEqualArray(m.headers.active_conditions, [true]), `snapshot row without active_conditions [true]: ${show(m)}`)
  }
  const tagOf = (parent) => rowsOf(parent)[0].headers.tags[0]
  const tag1 = tagOf(1)
  check(h, tag1 !== tagOf(3), 'the rows of two parents share a tag')

  // move-out: parent 1 leaves; no delete is sent, a move-out with its tag is
  const seen = h.messages.length
  await db.query(`UPDATE ${S}.parents SET active = false WHERE id = 1`)
  await waitUntil(h, () => h.messages.slice(seen).some((m) => m.headers?.event === 'move-out'), { what: 'a move-out event' })
  const out = h.messages.slice(seen).find((m) => m.headers?.event === 'move-out')
  assert.deepEqual(out.headers.patterns, [{ pos: 0, value: tag1 }], show(out))
  check(h, Array.isArray(out.headers.txids) && out.headers.txids.length === 1 && Number.isInteger(out.headers.txids[0]), `move-out without the txid of its transaction: ${show(out)}`)
  check(h, !h.messages.slice(seen).some((m) => isChangeMessage(m) && m.headers.operation === 'delete'), 'a move-out sent deletes')
  assert.deepEqual(byID(applyMoves(h.messages)), byID(await expected()))

  // move-in: parent 2 comes in; its rows follow the event, then snapshot-end
  const seen2 = h.messages.length
  await db.query(`UPDATE ${S}.parents SET active = true WHERE id = 2`)
  await waitUntil(h, () => h.messages.slice(seen2).some((m) => m.headers?.control === 'snapshot-end'), { what: 'the move-in rows and their snapshot-end' })
  const batch = h.messages.slice(seen2)
  const at = batch.findIndex((m) => m.headers?.event === 'move-in')
  check(h, at >= 0, `no move-in event: ${show(batch)}`)
  const inRows = batch.slice(at + 1).filter(isChangeMessage)
  assert.deepEqual(byID(inRows.map((m) => m.value)), byID((await db.query(`SELECT * FROM ${S}.children WHERE "parentId" = 2`)).rows))
  for (const m of inRows) {
    check(h, m.headers.operation === 'insert' && m.headers.is_move_in === true, `a move-in row is not an is_move_in insert: ${show(m)}`)
    check(h, m.headers.txids === undefined, `a move-in row carries txids (the client's subset de-duplication could drop it): ${show(m)}`)
    check(h, isDeepStrictEqualArray(m.headers.active_conditions, [true]) && m.headers.tags.length === 1, `a move-in row without tags/active_conditions: ${show(m)}`)
  }
  assert.deepEqual(batch[at].headers.patterns, [{ pos: 0, value: inRows[0].headers.tags[0] }], show(batch[at]))
  const end = batch.findIndex((m) => m.headers?.control === 'snapshot-end')
  check(h, end > at + inRows.length, `snapshot-end before the move-in rows: ${show(batch)}`)
  assert.deepEqual(byID(applyMoves(h.messages)), byID(await expected()))

  // the Shape helper gets the move-in rows (it ignores move-outs)
  await waitUntil(h, () => h.shape.isUpToDate && inRows.every((m) => h.shape.currentRows.some((r) => r.id === m.value.id)), { what: 'the Shape to hold the move-in rows' })

  // a change to a row that stays in, a move-out then move-in of parent 1 in
  // one transaction each, and a delete
  await db.query(`UPDATE ${S}.children SET label = 'renamed' WHERE "parentId" = 3`)
  await db.query(`UPDATE ${S}.parents SET active = NOT active WHERE id IN (1, 3)`)
  await db.query(`DELETE FROM ${S}.children WHERE id = 2`)
  const want = byID(await expected())
  await waitUntil(h, () => h.shape.isUpToDate && isDeepStrictEqual(byID(applyMoves(h.messages)), want), { what: 'the rows applied with their moves to equal Postgres' })
  check(h, !h.log.some((e) => e.status === 409), 'volt answered 409 (must-refetch) instead of moving rows')
})

function isDeepStrictEqualArray(a, b) {
  return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => v === b[i])
}
