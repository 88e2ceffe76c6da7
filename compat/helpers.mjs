// Shared helpers for the compatibility tests: they drive the official
// @electric-sql/client against a running volt (VOLT_URL) and compare what the
// client materialises with what Postgres (DATABASE_URL) itself returns.
//
// Nothing here hard-codes expected row data: expectations are always read
// back from Postgres with `pg`, converted with the same type conventions the
// Electric client documents for its default parser (int2/int4/float4/float8 →
// Number, int8 → BigInt, bool → boolean, json/jsonb → parsed JSON, arrays →
// nested JS arrays of those, everything else → Postgres' text output under
// Electric's display settings).

import assert from 'node:assert/strict'
import { isDeepStrictEqual, inspect } from 'node:util'
import pg from 'pg'
import { ShapeStream, Shape, isChangeMessage, isControlMessage } from '@electric-sql/client'

export const VOLT_URL = requiredEnv('VOLT_URL').replace(/\/+$/, '')
export const DATABASE_URL = requiredEnv('DATABASE_URL')
export const SHAPE_URL = `${VOLT_URL}/v1/shape`

function requiredEnv(name) {
  const v = process.env[name]
  if (!v) throw new Error(`${name} must be set (run through e2e/compat_test.go or set it by hand)`)
  return v
}

// Display settings Electric applies to both its snapshot and replication
// connections (protocol.md §8.1); expectations are rendered under them too.
const DISPLAY_SETTINGS = [
  `SET bytea_output = 'hex'`,
  `SET DateStyle = 'ISO, DMY'`,
  `SET TimeZone = 'UTC'`,
  `SET extra_float_digits = 1`,
  `SET IntervalStyle = 'iso_8601'`,
]

let nameSeq = 0
/** A table name unique across test files and runs (lower case, ≤ 63 bytes). */
export function uniqueName(prefix) {
  nameSeq++
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${nameSeq}`.toLowerCase().slice(0, 63)
}

// ---------------------------------------------------------------------------
// Postgres side

// oid → { typname, typelem, category } for every type, loaded once per client.
const pgTypes = new Map()

const scalarParsers = {
  int2: Number,
  int4: Number,
  float4: Number,
  float8: Number,
  int8: (v) => BigInt(v),
  bool: (v) => v === 't' || v === 'true',
  json: (v) => JSON.parse(v),
  jsonb: (v) => JSON.parse(v),
}
const identity = (v) => v

function electricStyleParser(oid) {
  const t = pgTypes.get(oid)
  if (!t) return identity
  if (t.category === 'A' && t.typelem !== 0) {
    const elem = pgTypes.get(t.typelem)
    const elemParse = (elem && scalarParsers[elem.typname]) || identity
    return (v) => pg.types.arrayParser.create(v, elemParse).parse()
  }
  return scalarParsers[t.typname] || identity
}

/**
 * A pg client whose result values follow the Electric client's conventions
 * (see the comment at the top), with Electric's display settings applied.
 */
export async function connectPg(t, { raw = false } = {}) {
  const client = new pg.Client({
    connectionString: DATABASE_URL,
    // raw: every value as Postgres' text output (no parsing at all)
    types: { getTypeParser: (oid, format) => (raw || format === 'binary' ? identity : electricStyleParser(oid)) },
  })
  await client.connect()
  if (t) t.after(() => client.end().catch(() => {}))
  await client.query(DISPLAY_SETTINGS.join('; '))
  if (pgTypes.size === 0) {
    // oid/typelem are cast to text so this query does not depend on the map itself.
    const { rows } = await client.query(
      `SELECT oid::text AS oid, typname::text AS typname, typelem::text AS typelem, typcategory::text AS category FROM pg_type`,
    )
    for (const r of rows) {
      pgTypes.set(Number(r.oid), { typname: r.typname, typelem: Number(r.typelem), category: r.category })
    }
  }
  return client
}

/** Quote an SQL identifier. */
export function ident(name) {
  return `"${String(name).replaceAll('"', '""')}"`
}

// ---------------------------------------------------------------------------
// Client side

/**
 * A fetch wrapper that records every request the client makes and what volt
 * answered (status, the headers the protocol cares about and the body, or the
 * SSE event text as it streams in). Used for failure diagnostics.
 */
function loggingFetch(log) {
  return async (input, init) => {
    const entry = {
      n: log.length + 1,
      at: Date.now(),
      method: init?.method ?? 'GET',
      url: decodeURIComponent(String(input instanceof Request ? input.url : input)).replace(VOLT_URL, ''),
      accept: headerOf(init?.headers, 'accept'),
      reqBody: typeof init?.body === 'string' ? init.body : undefined,
    }
    log.push(entry)
    let res
    try {
      res = await fetch(input, init)
    } catch (e) {
      entry.error = String(e?.cause ?? e)
      throw e
    }
    entry.ms = Date.now() - entry.at
    entry.status = res.status
    entry.headers = {}
    for (const [k, v] of res.headers) {
      if (k.startsWith('electric-') || k === 'content-type' || k === 'cache-control' || k === 'etag' || k === 'retry-after') {
        entry.headers[k] = v
      }
    }
    const sse = (res.headers.get('content-type') ?? '').includes('text/event-stream')
    entry.body = ''
    if (res.body) {
      const reader = res.clone().body.getReader()
      const dec = new TextDecoder()
      ;(async () => {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          if (entry.body.length < 6000) entry.body += dec.decode(value, { stream: true })
        }
        entry.ended = Date.now() - entry.at
      })().catch((e) => {
        entry.bodyError = String(e?.name ?? e)
      })
    }
    entry.sse = sse
    return res
  }
}

function headerOf(headers, name) {
  if (!headers) return undefined
  if (headers instanceof Headers) return headers.get(name) ?? undefined
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v
  return undefined
}

export function formatLog(log, max = 12) {
  const items = log.slice(-max)
  return items
    .map((e) => {
      const lines = [`#${e.n} ${e.method} ${e.url}${e.accept ? `  [accept: ${e.accept}]` : ''}${e.reqBody ? `  body: ${e.reqBody}` : ''}`]
      if (e.error) lines.push(`   → network error: ${e.error}`)
      else {
        lines.push(`   → ${e.status} after ${e.ms} ms${e.ended !== undefined ? ` (body ended at ${e.ended} ms)` : ''} ${JSON.stringify(e.headers)}`)
        if (e.body) lines.push(`   body: ${e.body.length > 400 ? e.body.slice(0, 400) + ' …' : e.body}`)
        if (e.bodyError) lines.push(`   body read: ${e.bodyError}`)
      }
      return lines.join('\n')
    })
    .join('\n')
}

/**
 * Opens a ShapeStream + Shape on volt. Everything is torn down when the test
 * ends. Returns { stream, shape, log, errors, messages, warnings }:
 * log = every HTTP exchange, errors = errors reported to onError,
 * messages = every message batch delivered to stream subscribers.
 */
export function openShape(t, params, options = {}) {
  const log = []
  const errors = []
  const messages = []
  const ac = new AbortController()
  const stream = new ShapeStream({
    url: SHAPE_URL,
    params,
    signal: ac.signal,
    fetchClient: loggingFetch(log),
    // Retry 5xx quickly a bounded number of times, so a persistently failing
    // server shows up as an error instead of an endless backoff.
    backoffOptions: { initialDelay: 50, maxDelay: 1000, multiplier: 2, maxRetries: 8 },
    onError: (e) => {
      errors.push(e)
      // returning nothing stops the stream: any non-retryable error is a failure here
    },
    ...options,
  })
  const shape = new Shape(stream)
  stream.subscribe((batch) => {
    messages.push(...batch)
  })
  const h = { stream, shape, log, errors, messages, params, options }
  t.after(() => {
    ac.abort()
    shape.unsubscribeAll()
    stream.unsubscribeAll()
  })
  return h
}

function describeErrors(errors) {
  return errors
    .map((e) => {
      const parts = [`${e?.name ?? 'Error'}: ${e?.message ?? e}`]
      if (e?.status !== undefined) parts.push(`status=${e.status}`)
      if (e?.url) parts.push(`url=${decodeURIComponent(e.url)}`)
      if (e?.json !== undefined) parts.push(`json=${JSON.stringify(e.json)}`)
      else if (e?.text) parts.push(`text=${e.text}`)
      return parts.join(' ')
    })
    .join('\n')
}

function diagnostics(h) {
  return [
    h.errors.length ? `stream errors:\n${describeErrors(h.errors)}` : 'stream errors: none',
    `shape: isUpToDate=${h.shape.isUpToDate} handle=${h.stream.shapeHandle} lastOffset=${h.stream.lastOffset}`,
    `HTTP exchanges (last 12 of ${h.log.length}):\n${formatLog(h.log)}`,
  ].join('\n')
}

/** Sorts rows by the given key columns so row sets can be compared. */
export function sortRows(rows, key) {
  const k = (r) => key.map((c) => String(r[c])).join('\u0000')
  return [...rows].sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0))
}

const show = (v) => inspect(v, { depth: 6, breakLength: 140, maxArrayLength: 50 })

/**
 * Waits (event-driven, via shape.subscribe) until the shape is up to date and
 * its rows equal `expected` (compared after sorting by `key`). Fails with a
 * diff and the HTTP exchange log on timeout or on a stream error.
 */
export async function waitForRows(h, expected, { key = ['id'], timeout = 15000, what = 'rows to converge' } = {}) {
  const want = sortRows(expected, key)
  const matches = () => h.shape.isUpToDate && isDeepStrictEqual(sortRows(h.shape.currentRows, key), want)
  if (matches()) return
  let unsubscribe = () => {}
  let timer
  try {
    await new Promise((resolve, reject) => {
      const check = () => {
        if (h.errors.length) reject(new Error(`stream failed while waiting for ${what}`))
        else if (h.shape.error) reject(new Error(`shape error while waiting for ${what}: ${h.shape.error}`))
        else if (matches()) resolve()
      }
      unsubscribe = h.shape.subscribe(check)
      // errors stop the stream without a shape notification in some paths
      const unsubErr = h.stream.subscribe(() => {}, () => setImmediate(check))
      const prev = unsubscribe
      unsubscribe = () => {
        prev()
        unsubErr()
      }
      timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout)
      check()
    })
  } catch (e) {
    let diff = ''
    try {
      assert.deepStrictEqual(sortRows(h.shape.currentRows, key), want)
    } catch (d) {
      diff = d.message
    }
    throw new Error(capped(`${e.message}\n${(diff || `rows: ${show(h.shape.currentRows)}\nexpected: ${show(want)}`).slice(0, 5000)}\n${diagnostics(h)}`))
  } finally {
    clearTimeout(timer)
    unsubscribe()
  }
}

/** `await shape.rows` with a timeout and diagnostics. */
export async function initialRows(h, { timeout = 15000 } = {}) {
  let timer
  try {
    return await Promise.race([
      h.shape.rows,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for shape.rows`)), timeout)
      }),
      new Promise((_, reject) => {
        h.stream.subscribe(() => {}, (e) => reject(new Error(`stream error: ${e?.message ?? e}`)))
      }),
    ])
  } catch (e) {
    throw new Error(capped(`${e.message}\n${diagnostics(h)}`))
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Polls `cond` (every 20 ms) until it holds; for conditions on the HTTP log,
 * which has no event to subscribe to. Fails with diagnostics on timeout.
 */
export async function waitUntil(h, cond, { timeout = 15000, what = 'condition' } = {}) {
  const start = Date.now()
  while (!cond()) {
    if (h.errors.length) check(h, false, `stream failed while waiting for ${what}`)
    if (Date.now() - start > timeout) check(h, false, `timed out after ${timeout} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Parses a volt duration setting ("3s", "500ms", "2m", or bare milliseconds). */
export function parseDurationMs(v, fallback) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(v ?? '')
  if (!m) return fallback
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60000 }[m[2] ?? 'ms'])
}

// node 20's test runner spins for minutes on very large failure messages, so
// every message built here is capped.
export function capped(message, max = 12000) {
  return message.length > max ? `${message.slice(0, max)}\n… (${message.length - max} more characters cut)` : message
}

/** Asserts with the HTTP log attached to the message. */
export function check(h, cond, message) {
  if (!cond) throw new Error(capped(`${message}\n${diagnostics(h)}`))
}

export function assertRowsEqual(h, actual, expected, key = ['id']) {
  try {
    assert.deepStrictEqual(sortRows(actual, key), sortRows(expected, key))
  } catch (e) {
    throw new Error(capped(`${e.message.slice(0, 5000)}\n${diagnostics(h)}`))
  }
}

export { isChangeMessage, isControlMessage, show, diagnostics }
