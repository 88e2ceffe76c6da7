// TanStack DB's Electric collection (the pinned @tanstack/electric-db-collection)
// on a subquery shape (subqueries.md): rows move
// in and out of the shape when rows of the tables its subqueries read change,
// and the collection must follow from volt's move-in / move-out events,
// `tags` and `active_conditions` alone (§9). Eager, on-demand (changes_only +
// subset snapshots for a live query) and progressive modes go through the
// same steps: move-in, move-out, a move-out then move-in cycle, tags-only
// changes (a row losing one of its two reasons to be in the shape stays, the
// last one removes it), a delete, one transaction in which some rows move in
// and others move out, and a fresh collection (a new snapshot) after
// move-outs. After every step the collection equals
// `SELECT … WHERE <clause>` in Postgres.
//
// The tables look like TanStack's own e2e tables: in their own schema,
// uuid keys, camelCase quoted columns, int8, timestamptz and jsonb.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import { createCollection, createLiveQueryCollection, gt } from '@tanstack/db'
import { electricCollectionOptions } from '@tanstack/electric-db-collection'
import { connectPg, uniqueName, ident, SHAPE_URL, sortRows, formatLog, capped } from './helpers.mjs'
import { loggingFetch } from './fetch-log.mjs'

const POST_COLUMNS = ['id', 'userId', 'teamId', 'title', 'n', 'largeViewCount', 'publishedAt', 'meta']

async function setup(t) {
  const db = await connectPg(t)
  const schema = uniqueName('sqm')
  const S = ident(schema)
  await db.query(`CREATE SCHEMA ${S}`)
  t.after(() => db.query(`DROP SCHEMA ${S} CASCADE`).catch(() => {}))
  await db.query(`CREATE TABLE ${S}.users (id uuid PRIMARY KEY, name text NOT NULL, "isActive" bool NOT NULL)`)
  await db.query(`CREATE TABLE ${S}.teams (id int8 PRIMARY KEY, "isOpen" bool NOT NULL)`)
  await db.query(`CREATE TABLE ${S}.posts (id uuid PRIMARY KEY, "userId" uuid NOT NULL, "teamId" int8, title text NOT NULL,
    n int4 NOT NULL, "largeViewCount" int8 NOT NULL, "publishedAt" timestamptz, meta jsonb)`)
  // A post is in the shape through its (active) user or its (open) team.
  const clause = `"userId" IN (SELECT id FROM ${S}.users WHERE "isActive" = true) OR "teamId" IN (SELECT id FROM ${S}.teams WHERE "isOpen")`
  const expected = async (extra = 'true') => (await db.query(`SELECT * FROM ${S}.posts WHERE (${clause}) AND ${extra}`)).rows
  const users = { u1: randomUUID(), u2: randomUUID(), u3: randomUUID() }
  for (const [name, id] of Object.entries(users)) {
    await db.query(`INSERT INTO ${S}.users VALUES ($1, $2, $3)`, [id, name, name !== 'u2'])
  }
  await db.query(`INSERT INTO ${S}.teams VALUES (1, true), (2, false)`)
  const posts = {}
  let seq = 0
  const insertPost = async (name, user, team, n = 1) => {
    posts[name] = randomUUID()
    seq++
    await db.query(`INSERT INTO ${S}.posts VALUES ($1, $2, $3, $4, $5, $6, timestamptz '2025-01-02 03:04:05+00' + $7 * interval '1 hour', $8)`, [
      posts[name], users[user], team, `post ${name}`, n, String(9007199254740993n + BigInt(seq)), seq, JSON.stringify({ name, seq }),
    ])
  }
  // p1: u1 (active); p2: u2 (inactive), team 2 (closed): out; p3: u3 and
  // team 1, two reasons; p4: u2 and team 1; p5: out, n = 0 (outside the
  // on-demand live query's where)
  await insertPost('p1', 'u1', null)
  await insertPost('p2', 'u2', 2)
  await insertPost('p3', 'u3', 1)
  await insertPost('p4', 'u2', 1)
  await insertPost('p5', 'u1', 2, 0)
  const exec = (sql, params) => db.query(sql.replaceAll('$S', S), params)
  return { db, S, clause, expected, users, posts, insertPost, exec, table: `${schema}.posts` }
}

function openCollection(t, env, syncMode) {
  const log = []
  const errors = []
  const ac = new AbortController()
  const collection = createCollection(
    electricCollectionOptions({
      id: `${env.table}-${syncMode}-${randomUUID()}`,
      getKey: (row) => row.id,
      syncMode,
      startSync: true,
      shapeOptions: {
        url: SHAPE_URL,
        params: { table: env.table, where: env.clause },
        signal: ac.signal,
        fetchClient: loggingFetch(log),
        backoffOptions: { initialDelay: 50, maxDelay: 1000, multiplier: 2, maxRetries: 8 },
        onError: (e) => {
          errors.push(e)
        },
      },
    }),
  )
  const h = { collection, log, errors }
  t.after(async () => {
    ac.abort()
    await collection.cleanup().catch(() => {})
  })
  return h
}

function describeState(h) {
  const errs = h.errors.map((e) => `${e?.name ?? 'Error'}: ${e?.message ?? e}${e?.status ? ` status=${e.status}` : ''}${e?.json ? ` json=${JSON.stringify(e.json)}` : ''}`)
  return [
    `collection status=${h.collection.status} size=${h.collection.size}`,
    `stream errors: ${errs.length ? errs.join('\n') : 'none'}`,
    `HTTP exchanges (last 12 of ${h.log.length}):\n${formatLog(h.log)}`,
  ].join('\n')
}

const plain = (row) => Object.fromEntries(POST_COLUMNS.map((c) => [c, row[c]]))

/** Waits until coll's rows equal want (Postgres rows), on change events and a 50 ms re-check. */
async function waitEqual(h, coll, want, what) {
  const sorted = sortRows(want.map(plain), ['id'])
  const current = () => sortRows(coll.toArray.map(plain), ['id'])
  const matches = () => h.errors.length === 0 && isDeepStrictEqual(current(), sorted)
  if (matches()) return
  let sub, timer, recheck
  try {
    await new Promise((resolve, reject) => {
      sub = coll.subscribeChanges(() => matches() && resolve())
      recheck = setInterval(() => matches() && resolve(), 50)
      timer = setTimeout(() => reject(new Error(`timed out after 10000 ms waiting for ${what}`)), 10000)
    })
  } catch (e) {
    let diff = ''
    try {
      assert.deepStrictEqual(current(), sorted)
    } catch (d) {
      diff = d.message.slice(0, 5000)
    }
    throw new Error(capped(`${e.message}\n${diff}\n${describeState(h)}`))
  } finally {
    clearTimeout(timer)
    clearInterval(recheck)
    sub?.unsubscribe()
  }
}

// The steps every mode goes through. view() is the collection to compare
// (the collection, or the on-demand live query), extra the live query's own
// where in SQL.
async function moves(t, env, h, view, extra) {
  const { posts, users, expected, exec } = env
  let before = await expected(extra)
  // run does the step's writes; every step changes the rows in the shape
  // (tags-only steps: only the reasons for them), checked against Postgres
  // so that a step which does not do what it means fails here
  const step = async (what, run, { changes = true } = {}) => {
    await run()
    const want = await expected(extra)
    assert.equal(!isDeepStrictEqual(sortRows(want, ['id']), sortRows(before, ['id'])), changes, `${what}: the step does not do what the test means`)
    before = want
    await waitEqual(h, view(), want, what)
    // a collection refetching (409) after a move would also end equal:
    // volt must move the rows, not give up on the shape
    assert.ok(!h.log.some((e) => e.status === 409), `${what}: volt answered 409 (must-refetch)\n${describeState(h)}`)
  }
  const has = (name) => view().has(posts[name])
  const setActive = (user, active) => exec(`UPDATE $S.users SET "isActive" = $1 WHERE id = $2`, [active, users[user]])
  const setOpen = (team, open) => exec(`UPDATE $S.teams SET "isOpen" = $1 WHERE id = $2`, [open, team])

  await step('move-in (u2 becomes active: p2 moves in, p4 gains a second reason)', () => setActive('u2', true))
  assert.ok(has('p2') && has('p4'))
  await step('move-out (u1 becomes inactive: p1 moves out)', () => setActive('u1', false))
  assert.ok(!has('p1'))
  await step('move-in again (u1 active again: p1 moves back in)', () => setActive('u1', true))
  assert.ok(has('p1'))
  // tags-only: team 1 closes, p3 and p4 lose one of their two reasons and
  // stay (only their active_conditions change); then u3 goes, and p3 with it
  await step('tags-only (team 1 closes: p3 and p4 stay through their users)', () => setOpen(1, false), { changes: false })
  assert.ok(has('p3') && has('p4'))
  await step('the last reason goes (u3 inactive: p3 moves out)', () => setActive('u3', false))
  assert.ok(!has('p3'))
  await step('a delete (p1)', () => exec(`DELETE FROM $S.posts WHERE id = $1`, [posts.p1]))
  assert.ok(!has('p1'))
  await step('a title update while the row stays in', () => exec(`UPDATE $S.posts SET title = 'renamed', meta = '{"renamed": true}' WHERE id = $1`, [posts.p2]))
  // one transaction: u3 moves in (p3), u2 moves out (p2 and p4: their teams
  // are closed), and a new post of u1's is inserted
  const p6 = randomUUID()
  await step('one transaction: some rows move in, others move out', async () => {
    await exec('BEGIN')
    await setActive('u3', true)
    await exec(`UPDATE $S.posts SET n = n + 1 WHERE id = $1`, [posts.p4])
    await setActive('u2', false)
    await exec(`INSERT INTO $S.posts VALUES ($1, $2, NULL, 'p6', 7, 1, NULL, NULL)`, [p6, users.u1])
    await exec('COMMIT')
  })
  assert.ok(has('p3') && !has('p2') && !has('p4') && view().has(p6))
  await step('a move-in through the other subquery (team 2 opens: p2 moves back in)', () => setOpen(2, true))
  assert.ok(has('p2'))
}

test('TanStack DB eager mode on a subquery shape: move-in, move-out, tags-only changes, delete, mixed transaction, snapshot after move-out', async (t) => {
  const env = await setup(t)
  const h = openCollection(t, env, 'eager')
  await h.collection.preload()
  await waitEqual(h, h.collection, await env.expected(), 'the initial snapshot')
  await moves(t, env, h, () => h.collection, 'true')
  // a new collection: its snapshot holds none of the rows that moved out
  const h2 = openCollection(t, env, 'eager')
  await h2.collection.preload()
  await waitEqual(h2, h2.collection, await env.expected(), 'a new snapshot after the moves')
  assert.ok(!h2.collection.has(env.posts.p4) && h2.collection.has(env.posts.p2))
})

test('TanStack DB on-demand mode on a subquery shape: a live query loads a subset, then follows the moves', async (t) => {
  const env = await setup(t)
  const h = openCollection(t, env, 'on-demand')
  await h.collection.preload()
  assert.equal(h.collection.size, 0, `an on-demand collection loads nothing before a query\n${describeState(h)}`)
  const q = createLiveQueryCollection({ query: (qb) => qb.from({ p: h.collection }).where(({ p }) => gt(p.n, 0)) })
  t.after(() => q.cleanup().catch(() => {}))
  await q.preload()
  await waitEqual(h, q, await env.expected('n > 0'), 'the live query (n > 0) after its subset snapshot')
  const urls = h.log.map((e) => `${e.method} ${e.url} ${e.reqBody ?? ''}`)
  assert.ok(urls.some((u) => u.includes('log=changes_only')), `no changes_only stream:\n${urls.join('\n')}`)
  assert.ok(urls.some((u) => u.includes('subset__') || u.startsWith('POST')), `no subset snapshot was requested:\n${urls.join('\n')}`)
  await moves(t, env, h, () => q, 'n > 0')
  await q.cleanup()
  // a new on-demand collection and query after the moves
  const h2 = openCollection(t, env, 'on-demand')
  const q2 = createLiveQueryCollection({ query: (qb) => qb.from({ p: h2.collection }).where(({ p }) => gt(p.n, 0)) })
  t.after(() => q2.cleanup().catch(() => {}))
  await q2.preload()
  await waitEqual(h2, q2, await env.expected('n > 0'), 'a new live query after the moves')
  await q2.cleanup()
})

test('TanStack DB progressive mode on a subquery shape: the full sync completes, then follows the moves', async (t) => {
  const env = await setup(t)
  const h = openCollection(t, env, 'progressive')
  // (preload() is a no-op in progressive mode: wait for the full sync itself)
  await waitEqual(h, h.collection, await env.expected(), 'the progressive full sync')
  await moves(t, env, h, () => h.collection, 'true')
  const h2 = openCollection(t, env, 'progressive')
  await waitEqual(h2, h2.collection, await env.expected(), 'a new progressive sync after the moves')
})

test('TanStack DB on a subquery shape whose columns leave out the IN column: an update that changes only the reason a row is in (its tags) keeps it through a later move-out of the old reason', async (t) => {
  const env = await setup(t)
  const { posts, users, exec, expected } = env
  const log = []
  const errors = []
  const ac = new AbortController()
  const collection = createCollection(
    electricCollectionOptions({
      id: `${env.table}-columns-${randomUUID()}`,
      getKey: (row) => row.id,
      startSync: true,
      shapeOptions: {
        url: SHAPE_URL,
        params: { table: env.table, where: env.clause, columns: 'id,title' },
        signal: ac.signal,
        fetchClient: loggingFetch(log),
        onError: (e) => {
          errors.push(e)
        },
      },
    }),
  )
  t.after(async () => {
    ac.abort()
    await collection.cleanup().catch(() => {})
  })
  const h = { collection, log, errors }
  const ids = async () => (await expected()).map((r) => r.id).sort()
  const waitIDs = async (what) => {
    const want = await ids()
    const deadline = Date.now() + 10000
    while (h.errors.length === 0 && Date.now() < deadline) {
      if (isDeepStrictEqual(collection.toArray.map((r) => r.id).sort(), want)) return
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.fail(capped(`${what}: rows ${collection.toArray.map((r) => r.id).sort()}, Postgres has ${want}\n${describeState(h)}`))
  }
  await collection.preload()
  await waitIDs('the initial snapshot')
  assert.ok(collection.has(posts.p1) && !('userId' in collection.get(posts.p1)))
  // p1 moves from u1 to u3 (both active): no selected column changes, only
  // its tags (an update with the key alone and removed_tags)
  await exec(`UPDATE $S.posts SET "userId" = $1 WHERE id = $2`, [users.u3, posts.p1])
  await waitIDs('p1 now in through u3')
  await exec(`UPDATE $S.users SET "isActive" = false WHERE id = $1`, [users.u1])
  await waitIDs('u1 moves out: p1 stays (its tags name u3 now)')
  assert.ok(collection.has(posts.p1))
  await exec(`UPDATE $S.users SET "isActive" = false WHERE id = $1`, [users.u3])
  await waitIDs('u3 moves out: p1 leaves')
  assert.ok(!collection.has(posts.p1))
  assert.ok(!h.log.some((e) => e.status === 409), `volt answered 409\n${describeState(h)}`)
})
