// Pattern 4: through-the-database sync, with PGlite in the browser.
//
// The app only talks to its local Postgres: it reads the todos view and
// writes it with plain INSERT/UPDATE/DELETE (local-schema.js turns those
// into overlay rows and outbox entries). Two loops connect that database
// to volt:
//   - sync: the official client's ShapeStream feeds todos_synced, each
//     batch in one local transaction together with the shape's handle and
//     offset, so a reload resumes where it stopped instead of starting over;
//   - send: the outbox goes to POST /v1/mutations in seq order with a
//     client_id kept in the database, so a reload resumes the same queue
//     and the server applies each seq once.
// An accepted transaction's overlay rows are dropped when its echo reaches
// todos_synced (same local transaction as the echo, so the row never shows
// the old value in between); a rejected one is rolled back by rebuilding
// the overlay rows it touched from what is still pending, and its outbox
// row stays, marked rejected, as the notice until dismissed.
import { PGlite } from '@electric-sql/pglite'
import { ShapeStream } from '@electric-sql/client'
import { newId, post, RequestError } from './api.js'
import { Echo } from './echo.js'
import { isNetworkError, sleep } from './net.js'
import { backoffOptions } from './shape.js'
import { SCHEMA, TABLE } from './local-schema.js'
import { plural } from './overlaylist.js'
import { coalesced, pendingDetail } from './queue.js'

export const DATA_DIR = 'idb://volt-demo-todos'

export async function throughDbList({ view, net }) {
  view.render({ items: [], status: 'Starting PGlite (Postgres in WebAssembly)…' })
  // One PGlite database per browser, used by one tab at a time.
  const waiting = setTimeout(() => view.render({ items: [], status: 'This list is open in another tab of this browser: close it to use the list here.' }), 3000)
  await holdLock('volt-demo-pglite')
  clearTimeout(waiting)

  const started = performance.now()
  // relaxedDurability: queries return before IndexedDB has their changes
  // (each flush takes a few hundred ms), and the page flushes where it
  // matters: after each of the user's writes (write below), so a write the
  // page shows survives a reload. What the loops record (synced rows,
  // offsets, answers) may be lost to a reload; they are then redone: the
  // shape resumes from an earlier offset, and a resent seq is answered
  // with its stored result.
  const db = await PGlite.create({ dataDir: DATA_DIR, loadDataDir: await seed(), relaxedDurability: true })
  const flush = () => db.fs.syncToFs(false)
  await db.exec(SCHEMA)
  console.info(`PGlite ${DATA_DIR} ready in ${Math.round(performance.now() - started)} ms`)
  await db.query(`INSERT INTO meta VALUES ('client_id', $1) ON CONFLICT DO NOTHING`, [`pglite-${newId()}`])
  const meta = await readMeta(db)
  const clientId = meta.client_id
  const echo = new Echo(BigInt(meta.synced_lsn ?? '0'))
  // answered_at counts up-to-dates of this page; an earlier page's
  // answers count as older than all of them (echo.js).
  await db.exec(`UPDATE outbox SET answered_at = 0 WHERE status = 'accepted'`)
  let upToDate = false
  let sending = false

  async function draw() {
    const [rows, rejected, m] = await Promise.all([
      db.query(`SELECT t.id, t.title, t.done, t.created_at, t.pending_seq, o.status
        FROM todos t LEFT JOIN outbox o ON o.seq = t.pending_seq ORDER BY t.created_at, t.id`),
      db.query(`SELECT seq, label, code, message FROM outbox WHERE status = 'rejected' ORDER BY seq`),
      db.query(`SELECT count(*) FILTER (WHERE status <> 'rejected')::int AS waiting, (SELECT value FROM meta WHERE key = 'next_seq') AS next FROM outbox`),
    ])
    const { waiting: pending, next: nextSeq } = m.rows[0]
    const items = rows.rows.map((r) => ({
      id: r.id,
      title: r.title,
      done: r.done,
      state: r.pending_seq == null ? 'confirmed' : 'pending',
      detail: pendingDetail(r.status, net, sending),
    }))
    const notices = rejected.rows.map((r) => ({ id: String(r.seq), kind: 'rejected', title: 'Rejected, rolled back:', text: `${r.label}: ${r.message} [${r.code}]` }))
    let status = ''
    if (!upToDate) status = net.offline ? 'Offline: showing the local database' : 'Syncing…'
    else if (pending && net.offline) status = `Offline: ${plural(pending, 'write')} in the outbox, sent when back online`
    else if (pending) status = `${plural(pending, 'write')} in the outbox`
    view.render({ items, notices, status, synced: upToDate, meta: `client_id ${clientId} · next seq ${nextSeq} · ${DATA_DIR}` })
  }
  // Draws are serialised and coalesced.
  const redraw = coalesced(draw, 'draw')

  // reconcile drops the accepted transactions whose echo has arrived.
  async function reconcile(tx) {
    const { rows } = await tx.query(`SELECT seq, txid, lsn, replayed, answered_at FROM outbox WHERE status = 'accepted' ORDER BY seq`)
    for (const r of rows) {
      if (!echo.sees({ txid: r.txid, lsn: r.lsn, replayed: r.replayed }, r.answered_at)) continue
      await tx.query(`DELETE FROM todos_overlay WHERE seq = $1`, [r.seq])
      await tx.query(`DELETE FROM outbox WHERE seq = $1`, [r.seq])
    }
  }

  // Sync loop: shape → todos_synced.
  const stream = new ShapeStream({
    url: new URL('/v1/shape', location.href).toString(),
    params: { table: TABLE },
    ...(meta.shape_handle ? { handle: meta.shape_handle, offset: meta.shape_offset } : {}),
    fetchClient: net.fetch,
    backoffOptions,
    onError: () => ({}),
  })
  stream.subscribe(async (messages) => {
    await db.transaction(async (tx) => {
      for (const m of messages) {
        const h = m.headers
        if (h.control === 'must-refetch') await tx.query(`DELETE FROM todos_synced`)
        else if (h.operation === 'insert')
          await tx.query(
            `INSERT INTO todos_synced SELECT * FROM jsonb_populate_record(null::todos_synced, $1::jsonb)
             ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, done = EXCLUDED.done, created_at = EXCLUDED.created_at`,
            [JSON.stringify(m.value)],
          )
        else if (h.operation === 'update')
          await tx.query(
            `UPDATE todos_synced t SET (title, done, created_at) =
               (SELECT r.title, r.done, r.created_at FROM jsonb_populate_record(t, $1::jsonb) r) WHERE t.id = $2`,
            [JSON.stringify(m.value), m.value.id],
          )
        else if (h.operation === 'delete') await tx.query(`DELETE FROM todos_synced WHERE id = $1`, [m.value.id])
      }
      echo.record(messages)
      await setMeta(tx, { shape_handle: stream.shapeHandle ?? '', shape_offset: stream.lastOffset ?? '-1', synced_lsn: String(echo.lsn) })
      await reconcile(tx)
    })
    if (messages.some((m) => m.headers.control === 'up-to-date')) upToDate = true
    redraw()
  })

  // Send loop: outbox → POST /v1/mutations. Calls while it runs make it
  // look again before it stops.
  const send = coalesced(async () => {
    let backoff = 250
    for (;;) {
      const { rows } = await db.query(`SELECT seq, mutations FROM outbox WHERE status = 'queued' ORDER BY seq LIMIT 50`)
      if (rows.length === 0) return
      if (net.offline) {
        redraw()
        await net.online()
        continue
      }
      sending = true
      redraw()
      let results
      try {
        results = await post(net, clientId, rows.map((r) => ({ seq: Number(r.seq), mutations: r.mutations })))
      } catch (err) {
        sending = false
        if (err instanceof RequestError) {
          results = rows.map((r) => ({ seq: Number(r.seq), status: 'rejected', code: `http_${err.status}`, message: err.message }))
        } else if (isNetworkError(err)) {
          redraw()
          await Promise.race([sleep(backoff), net.offline ? net.online() : new Promise(() => {})])
          backoff = Math.min(backoff * 2, 2000)
          continue
        } else throw err
      }
      sending = false
      backoff = 250
      const retry = await settle(results)
      redraw()
      if (retry) await sleep(500)
    }
  }, 'send loop')

  // settle records the server's results in the outbox; it reports whether
  // one asked to retry.
  async function settle(results) {
    let retry = false
    await db.transaction(async (tx) => {
      for (const r of results) {
        if (r.status === 'accepted') {
          await tx.query(`UPDATE outbox SET status = 'accepted', txid = $2, lsn = $3, replayed = $4, answered_at = $5 WHERE seq = $1`, [
            r.seq,
            r.txid ?? null,
            r.lsn ?? null,
            Boolean(r.replayed),
            echo.upToDates,
          ])
        } else if (r.status === 'retry') {
          retry = true
        } else if (r.code === 'out_of_order') {
          // Not expected: next_seq is kept with the outbox. Leave the queue
          // as it is and say so.
          console.error('out_of_order', r)
          retry = true
        } else {
          await tx.query(`UPDATE outbox SET status = 'rejected', code = $2, message = $3 WHERE seq = $1`, [r.seq, r.code, r.message])
          await tx.query(`SELECT overlay_rebuild($1)`, [r.seq])
        }
      }
      await reconcile(tx)
    })
    return retry
  }

  // A write: one local transaction on the view, then wake the send loop.
  async function write(sql, params) {
    await db.query(sql, params)
    await flush()
    redraw()
    send()
  }
  view.handlers = {
    onAdd: (title) => write(`INSERT INTO todos (id, title, done, created_at) VALUES ($1, $2, false, $3)`, [newId(), title, new Date().toISOString()]),
    onToggle: (id, done) => write(`UPDATE todos SET done = $2 WHERE id = $1`, [id, done]),
    onRename: (id, title) => write(`UPDATE todos SET title = $2 WHERE id = $1`, [id, title]),
    onDelete: (id) => write(`DELETE FROM todos WHERE id = $1`, [id]),
    onDismiss: async (seq) => {
      await db.query(`DELETE FROM outbox WHERE seq = $1 AND status = 'rejected'`, [seq])
      redraw()
    },
    onRedraw: redraw,
  }
  net.addEventListener('change', () => {
    redraw()
    if (!net.offline) send()
  })
  redraw()
  send() // what an earlier page left in the outbox
  return { db, stream }
}

// seed returns the pre-built data directory (build.mjs) when this browser
// has no database yet, so PGlite skips initdb; undefined otherwise.
async function seed() {
  const dbs = (await indexedDB.databases?.()) ?? null
  if (dbs == null || dbs.some((d) => d.name === `/pglite/${DATA_DIR.slice('idb://'.length)}`)) return undefined
  const res = await fetch('pglite-seed.tar.gz')
  return res.ok ? res.blob() : undefined
}

async function readMeta(db) {
  const { rows } = await db.query(`SELECT key, value FROM meta`)
  return Object.fromEntries(rows.map((r) => [r.key, r.value]))
}

async function setMeta(tx, kv) {
  for (const [k, v] of Object.entries(kv)) {
    await tx.query(`INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [k, v])
  }
}

// holdLock waits for the Web Lock name and keeps it for the page's life.
function holdLock(name) {
  if (!navigator.locks) return Promise.resolve()
  return new Promise((resolve) => {
    navigator.locks.request(name, () => {
      resolve()
      return new Promise(() => {})
    })
  })
}
