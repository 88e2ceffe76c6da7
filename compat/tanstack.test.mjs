// TanStack DB's Electric collection (@tanstack/electric-db-collection) on a
// volt shape, with writes going through volt's own write endpoint
// (POST /v1/mutations, docs/MUTATIONS.md): onInsert/onUpdate/onDelete return
// the `txid` volt answers, and the collection's awaitTxId must resolve on the
// `txids` of the replicated change (protocol.md §14), or on the snapshot-end
// xmin/xmax/xip_list for writes made before the snapshot. Also on-demand sync
// mode: live queries with where/orderBy/limit load subsets through
// `log=changes_only` + subset snapshots (requestSnapshot), and progressive
// mode, which fetches subsets (fetchSnapshot) while the full sync runs.
//
// Expectations are always read back from Postgres (helpers.mjs' connectPg
// converts values the way the Electric client's default parser does).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isDeepStrictEqual } from 'node:util'
import { createCollection, createLiveQueryCollection, eq, gt, and, BTreeIndex } from '@tanstack/db'
import { electricCollectionOptions } from '@tanstack/electric-db-collection'
import { connectPg, uniqueName, ident, VOLT_URL, SHAPE_URL, sortRows, formatLog, capped, show } from './helpers.mjs'
import { loggingFetch } from './fetch-log.mjs'

const DDL = `id int4 PRIMARY KEY, title text NOT NULL, owner text, n int4 NOT NULL DEFAULT 0, done bool NOT NULL DEFAULT false, big int8, meta jsonb, at timestamptz`

async function setup(t, prefix, rows = 0) {
  const db = await connectPg(t)
  const table = uniqueName(prefix)
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (${DDL})`)
  if (rows > 0) {
    await db.query(`INSERT INTO ${T} SELECT g, 'title ' || g, (ARRAY['alice','bob','carol'])[1 + g % 3], g * 7 % 50, g % 2 = 0,
      g::int8 * 10000000000, jsonb_build_object('g', g), timestamptz '2024-05-06 07:08:09+00' + g * interval '1 day'
      FROM generate_series(1, ${rows}) g`)
  }
  const pgRows = async (where = 'true', params = []) => (await db.query(`SELECT * FROM ${T} WHERE ${where}`, params)).rows
  return { db, table, T, pgRows }
}

// ---------------------------------------------------------------------------
// volt's write endpoint

/** A writer queue (client_id + seq) on POST /v1/mutations. */
function writer(prefix) {
  const clientId = `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  let seq = 0
  const exchanges = []
  // each element of `txs` is one client transaction (an array of mutations)
  async function send(...txs) {
    const body = { client_id: clientId, transactions: txs.map((mutations) => ({ seq: ++seq, mutations })) }
    const text = JSON.stringify(body, (_, v) => (typeof v === 'bigint' ? v.toString() : v))
    const res = await fetch(`${VOLT_URL}/v1/mutations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text })
    const answer = await res.text()
    exchanges.push(`POST /v1/mutations ${text}\n   → ${res.status} ${answer}`)
    if (res.status !== 200) throw new Error(`POST /v1/mutations answered ${res.status}: ${answer}\nrequest: ${text}`)
    const { results } = JSON.parse(answer)
    for (const r of results) {
      if (r.status !== 'accepted' || typeof r.txid !== 'number') {
        throw new Error(`mutation not accepted with a numeric txid: ${JSON.stringify(r)}\nrequest: ${text}`)
      }
    }
    return results.map((r) => r.txid)
  }
  return { send, exchanges, clientId }
}

/** Only the table's own columns of a collection row. */
function plain(row, columns) {
  return Object.fromEntries(columns.filter((c) => c in row).map((c) => [c, row[c]]))
}

// ---------------------------------------------------------------------------
// the collection

function openCollection(t, table, extra = {}, params = {}) {
  const log = []
  const errors = []
  const ac = new AbortController()
  const collection = createCollection(
    electricCollectionOptions({
      id: table,
      getKey: (row) => row.id,
      shapeOptions: {
        url: SHAPE_URL,
        params: { table, ...params },
        signal: ac.signal,
        fetchClient: loggingFetch(log),
        backoffOptions: { initialDelay: 50, maxDelay: 1000, multiplier: 2, maxRetries: 8 },
        onError: (e) => {
          errors.push(e)
        },
      },
      ...extra,
    }),
  )
  const h = { collection, log, errors, table }
  t.after(async () => {
    ac.abort()
    await collection.cleanup().catch(() => {})
  })
  return h
}

function describe(h, w) {
  const errs = h.errors.map((e) => `${e?.name ?? 'Error'}: ${e?.message ?? e}${e?.status ? ` status=${e.status}` : ''}${e?.json ? ` json=${JSON.stringify(e.json)}` : ''}`)
  return [
    `collection status=${h.collection.status} size=${h.collection.size}`,
    `stream errors: ${errs.length ? errs.join('\n') : 'none'}`,
    w ? `write endpoint exchanges:\n${w.exchanges.slice(-6).join('\n')}` : '',
    `HTTP exchanges (last 12 of ${h.log.length}):\n${formatLog(h.log)}`,
  ].filter(Boolean).join('\n')
}

const COLUMNS = ['id', 'title', 'owner', 'n', 'done', 'big', 'meta', 'at']

// Indexes let a live query with orderBy + limit load only what it needs
// (loadSubset with a limit / cursor) instead of everything.
const INDEXED = { autoIndex: 'eager', defaultIndexType: BTreeIndex }

/**
 * Waits (on the collection's change events, with a deadline) until `coll`'s
 * rows equal `expected`, and every row is synced (no optimistic state left).
 */
async function waitForCollection(h, coll, expected, { timeout = 15000, what = 'the collection to equal Postgres', w } = {}) {
  const want = sortRows(expected, ['id'])
  const current = () => sortRows(coll.toArray.map((r) => plain(r, COLUMNS)), ['id'])
  const matches = () => isDeepStrictEqual(current(), want) && coll.toArray.every((r) => r.$synced !== false)
  if (!matches()) {
    let sub
    let timer
    let recheck
    try {
      await new Promise((resolve, reject) => {
        sub = coll.subscribeChanges(() => {
          if (matches()) resolve()
        })
        // A derived (live query) collection can settle without a further
        // change event after the one that found it not yet matching, so the
        // condition is also re-checked every 100 ms until the deadline.
        recheck = setInterval(() => {
          if (matches()) resolve()
        }, 100)
        timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout)
        if (matches()) resolve()
      })
    } catch (e) {
      let diff = ''
      try {
        assert.deepStrictEqual(current(), want)
      } catch (d) {
        diff = d.message.slice(0, 5000)
      }
      throw new Error(capped(`${e.message}\n${diff || `rows equal, but unsynced (optimistic) rows remain: ${show(coll.toArray.filter((r) => r.$synced === false))}`}\n${describe(h, w)}`))
    } finally {
      clearTimeout(timer)
      clearInterval(recheck)
      sub?.unsubscribe()
    }
  }
}

async function preload(h, w) {
  let timer
  try {
    await Promise.race([
      h.collection.preload(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out after 15000 ms waiting for collection.preload()')), 15000)
      }),
    ])
  } catch (e) {
    throw new Error(capped(`${e.message}\n${describe(h, w)}`))
  } finally {
    clearTimeout(timer)
  }
}

/** Awaits a TanStack transaction's persistence (onInsert/… + awaitTxId). */
async function persisted(h, w, tx, what) {
  try {
    await tx.isPersisted.promise
  } catch (e) {
    throw new Error(capped(`${what}: the transaction failed: ${e?.name}: ${e?.message}\n${describe(h, w)}`))
  }
  assert.equal(tx.state, 'completed', `${what}: transaction state ${tx.state}`)
}

// Mutation handlers that forward TanStack's pending mutations to volt, one
// client transaction per TanStack transaction, and return volt's txid.
function handlers(table, w, calls) {
  const mutationOf = (m) => {
    switch (m.type) {
      case 'insert':
        return { op: 'insert', table, values: plain(m.modified, COLUMNS) }
      case 'update':
        return { op: 'update', table, key: { id: m.original.id }, values: m.changes, original: plain(m.original, Object.keys(m.changes)) }
      case 'delete':
        return { op: 'delete', table, key: { id: m.original.id } }
    }
  }
  const handler = (kind) => async ({ transaction }) => {
    const [txid] = await w.send(transaction.mutations.map(mutationOf))
    calls.push({ kind, txid })
    return { txid }
  }
  return { onInsert: handler('insert'), onUpdate: handler('update'), onDelete: handler('delete') }
}

test('TanStack DB electric collection: initial sync equals Postgres', async (t) => {
  const { pgRows, table } = await setup(t, 'compat_tsd_init', 120)
  const h = openCollection(t, table)
  await preload(h)
  assert.equal(h.collection.status, 'ready', describe(h))
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the initial sync' })
})

test('TanStack DB: insert/update/delete through onInsert/onUpdate/onDelete → POST /v1/mutations → awaitTxId resolves', async (t) => {
  const { db, T, pgRows, table } = await setup(t, 'compat_tsd_write', 10)
  const w = writer('tsd')
  const calls = []
  const h = openCollection(t, table, handlers(table, w, calls))
  await preload(h, w)
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the initial sync', w })

  // insert: the optimistic row is visible at once, then replaced by the synced one
  const tx1 = h.collection.insert({ id: 100, title: 'from tanstack', owner: 'dave', n: 3, done: false, big: 12345678901234n, meta: { a: [1, 'two'] }, at: '2024-01-02 03:04:05+00' })
  assert.ok(h.collection.has(100), 'the optimistic insert is not visible')
  await persisted(h, w, tx1, 'insert')
  assert.equal(calls.at(-1)?.kind, 'insert')
  assert.equal(await h.collection.utils.awaitTxId(calls.at(-1).txid, 5000), true)
  const [row100] = await pgRows('id = 100')
  assert.ok(row100, 'the insert did not reach Postgres')
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the collection after the insert', w })

  // several inserts in one TanStack transaction: one client transaction, one txid
  const tx2 = h.collection.insert([
    { id: 101, title: 'batch 1', owner: 'dave', n: 1, done: false, big: null, meta: null, at: null },
    { id: 102, title: 'batch 2', owner: 'dave', n: 2, done: true, big: -1n, meta: [], at: '2025-12-31 23:59:59.999999+00' },
  ])
  await persisted(h, w, tx2, 'batch insert')
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the collection after the batch insert', w })

  // update
  const tx3 = h.collection.update(1, (draft) => {
    draft.title = 'updated through tanstack'
    draft.done = !draft.done
    draft.meta = { nested: { x: null } }
  })
  await persisted(h, w, tx3, 'update')
  assert.equal(calls.at(-1)?.kind, 'update')
  assert.equal((await pgRows('id = 1'))[0].title, 'updated through tanstack')
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the collection after the update', w })

  // update of several rows at once
  const tx4 = h.collection.update([2, 3, 4], (drafts) => {
    for (const d of drafts) d.n += 100
  })
  await persisted(h, w, tx4, 'multi-row update')
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the collection after the multi-row update', w })

  // delete
  const tx5 = h.collection.delete(5)
  await persisted(h, w, tx5, 'delete')
  assert.equal(calls.at(-1)?.kind, 'delete')
  assert.equal((await pgRows('id = 5')).length, 0)
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the collection after the delete', w })

  // a write by someone else in between still arrives
  await db.query(`UPDATE ${T} SET title = 'direct' WHERE id = 6`)
  const tx6 = h.collection.delete([7, 100])
  await persisted(h, w, tx6, 'multi-row delete')
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the collection after a direct write and a multi-row delete', w })
  assert.deepEqual(calls.map((c) => c.kind), ['insert', 'insert', 'update', 'update', 'delete', 'delete'])
  // txids are distinct transactions
  assert.equal(new Set(calls.map((c) => c.txid)).size, calls.length, `txids repeat: ${calls.map((c) => c.txid)}`)
})

test('TanStack DB: a txid array (two client transactions in one request) is awaited', async (t) => {
  const { pgRows, table } = await setup(t, 'compat_tsd_txids', 3)
  const w = writer('tsd-arr')
  const h = openCollection(t, table, {
    onInsert: async ({ transaction }) => {
      // one client transaction per row, sent in one request: several txids
      const txids = await w.send(...transaction.mutations.map((m) => [{ op: 'insert', table, values: plain(m.modified, COLUMNS) }]))
      return { txid: txids }
    },
  })
  await preload(h, w)
  const tx = h.collection.insert([10, 11, 12].map((id) => ({ id, title: `t${id}`, owner: null, n: id, done: false, big: null, meta: null, at: null })))
  await persisted(h, w, tx, 'insert with a txid array')
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the collection after the inserts', w })
})

test('TanStack DB: awaitTxId of a write made before the collection started resolves via snapshot-end', async (t) => {
  const { pgRows, table } = await setup(t, 'compat_tsd_snap', 5)
  const w = writer('tsd-snap')
  const [txid] = await w.send([{ op: 'insert', table, values: { id: 50, title: 'before the snapshot', n: 1 } }])
  const h = openCollection(t, table)
  await preload(h, w)
  // the insert is in the snapshot, so no change message carries its txid:
  // only snapshot-end's xmin/xmax/xip_list can prove it visible
  let ok
  try {
    ok = await h.collection.utils.awaitTxId(txid, 5000)
  } catch (e) {
    const snapEnd = h.log.map((e) => e.body ?? '').join('').match(/\{[^{}]*"control":"snapshot-end"[^{}]*\}/)
    throw new Error(capped(`awaitTxId(${txid}) failed: ${e?.name}: ${e?.message}\nsnapshot-end seen: ${snapEnd?.[0]}\n${describe(h, w)}`))
  }
  assert.equal(ok, true)
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the initial sync', w })
})

test("TanStack DB on-demand sync mode: live queries with where/orderBy/limit load subsets (changes_only + requestSnapshot) and follow changes", async (t) => {
  const { db, T, pgRows, table } = await setup(t, 'compat_tsd_od', 60)
  const w = writer('tsd-od')
  const calls = []
  // replica=full: TanStack drops an update of a row it has not loaded unless
  // the shape sends complete rows (electric.ts: `if (!receivesCompleteRows)
  // continue`), so rows moving *into* a query's where need replica=full, with
  // Electric as with volt
  const h = openCollection(t, table, { syncMode: 'on-demand', ...INDEXED, ...handlers(table, w, calls) }, { replica: 'full' })
  await preload(h, w)
  assert.equal(h.collection.size, 0, `an on-demand collection loads nothing before a query\n${describe(h, w)}`)

  const top = createLiveQueryCollection({
    query: (q) => q.from({ r: h.collection }).where(({ r }) => eq(r.owner, 'alice')).orderBy(({ r }) => r.n, 'desc').orderBy(({ r }) => r.id).limit(5),
  })
  const cleanups = [() => top.cleanup()]
  t.after(async () => {
    for (const c of cleanups) await c().catch(() => {})
  })
  const expectTop = async () => (await db.query(`SELECT * FROM ${T} WHERE owner = 'alice' ORDER BY n DESC, id LIMIT 5`)).rows
  await top.preload()
  await waitForCollection(h, top, await expectTop(), { what: 'the on-demand live query (owner = alice, n desc, limit 5)', w })
  const requests = h.log.map((e) => `${e.method} ${e.url}${e.reqBody ? ` ${e.reqBody}` : ''}`)
  assert.ok(requests.some((u) => u.includes('log=changes_only')), `the on-demand stream did not use log=changes_only:\n${requests.join('\n')}`)
  assert.ok(requests.some((u) => /subset__limit=5\b|"limit":5\b/.test(u)), `no subset snapshot with limit 5 was requested:\n${requests.join('\n')}`)
  assert.ok(h.collection.size < 60, `the on-demand collection loaded every row (${h.collection.size})\n${describe(h, w)}`)

  // a second, different query on the same collection
  const mid = createLiveQueryCollection({
    query: (q) => q.from({ r: h.collection }).where(({ r }) => and(eq(r.owner, 'bob'), gt(r.n, 20))),
  })
  cleanups.unshift(() => mid.cleanup())
  await mid.preload()
  await waitForCollection(h, mid, await pgRows(`owner = 'bob' AND n > 20`), { what: "the second live query (owner = bob AND n > 20)", w })

  // changes in Postgres move rows in and out of the queries' results
  const first = (await expectTop())[0]
  await db.query(`UPDATE ${T} SET n = -1 WHERE id = $1`, [first.id]) // leaves the top 5: the next one must be loaded
  await db.query(`UPDATE ${T} SET n = n + 1 WHERE owner = 'bob'`)
  await db.query(`DELETE FROM ${T} WHERE owner = 'bob' AND n > 40`)
  await db.query(`INSERT INTO ${T} VALUES (1000, 'new top', 'alice', 999, false, NULL, NULL, NULL)`)
  await waitForCollection(h, top, await expectTop(), { what: 'the top-5 query after live changes', w })
  await waitForCollection(h, mid, await pgRows(`owner = 'bob' AND n > 20`), { what: 'the bob query after live changes', w })

  // a write through the collection in on-demand mode: awaitTxId on a changes_only stream
  const tx = h.collection.update(1000, (d) => {
    d.n = 1001
  })
  await persisted(h, w, tx, 'update in on-demand mode')
  await waitForCollection(h, top, await expectTop(), { what: 'the top-5 query after a write through the collection', w })
  // live queries first: cleaning up their source first makes TanStack log errors
  for (const c of cleanups.splice(0)) await c()
})

test('TanStack DB progressive sync mode: a live query is answered (fetchSnapshot), then the full sync completes', async (t) => {
  const { db, T, pgRows, table } = await setup(t, 'compat_tsd_prog', 200)
  const h = openCollection(t, table, { syncMode: 'progressive', ...INDEXED })
  const q = createLiveQueryCollection({
    query: (qb) => qb.from({ r: h.collection }).where(({ r }) => eq(r.owner, 'carol')).orderBy(({ r }) => r.id).limit(3),
  })
  t.after(() => q.cleanup().catch(() => {}))
  await q.preload()
  const subsetRequests = h.log.filter((e) => e.url.includes('subset__') || e.method === 'POST')
  assert.ok(subsetRequests.length > 0, `no subset snapshot (fetchSnapshot) was requested:\n${describe(h)}`)
  await waitForCollection(h, q, await pgRows(`id IN (SELECT id FROM ${T} WHERE owner = 'carol' ORDER BY id LIMIT 3)`), { what: 'the progressive live query' })
  // (preload() is a no-op in progressive mode: wait for the full sync itself)
  await waitForCollection(h, h.collection, await pgRows(), { what: 'the full progressive sync' })
  await db.query(`UPDATE ${T} SET title = 'changed' WHERE id <= 10`)
  await db.query(`DELETE FROM ${T} WHERE id = 3`)
  await waitForCollection(h, h.collection, await pgRows(), { what: 'live changes after the progressive sync' })
  await waitForCollection(h, q, await pgRows(`id IN (SELECT id FROM ${T} WHERE owner = 'carol' ORDER BY id LIMIT 3)`), { what: 'the progressive live query after changes' })
  await q.cleanup()
})
