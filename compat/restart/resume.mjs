// Two-phase check that the official client resumes from a stored handle and
// offset after volt restarts (driven by e2e/compat_test.go
// TestOfficialClientResumesAfterRestart, which restarts volt between the
// phases):
//
//   node restart/resume.mjs save   <table> <state.json>   sync, then store handle, offset and rows
//   node restart/resume.mjs resume <table> <state.json>   resume from them; must converge to
//                                                          Postgres without syncing from scratch
import fs from 'node:fs'
import pg from 'pg'
import { ShapeStream } from '@electric-sql/client'

const [mode, table, stateFile] = process.argv.slice(2)
const SHAPE_URL = `${process.env.VOLT_URL.replace(/\/+$/, '')}/v1/shape`

async function postgresRows() {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await c.connect()
  try {
    const r = await c.query(`SELECT id, title FROM ${table} ORDER BY id`)
    return r.rows.map((x) => ({ id: x.id, title: x.title }))
  } finally {
    await c.end()
  }
}

const sorted = (rows) => [...rows.values()].sort((a, b) => a.id - b.id).map((r) => ({ id: r.id, title: r.title }))

async function follow(opts, rows, log) {
  const want = JSON.stringify(await postgresRows())
  const ac = new AbortController()
  const stream = new ShapeStream({
    url: SHAPE_URL, params: { table }, signal: ac.signal, ...opts,
    fetchClient: async (input, init) => {
      const res = await fetch(input, init)
      log.push(`${decodeURIComponent(String(input)).replace(SHAPE_URL, '')} -> ${res.status}`)
      return res
    },
  })
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not converge; rows ${JSON.stringify(sorted(rows))}, want ${want}\nrequests:\n${log.join('\n')}`)), 20000)
    stream.subscribe((batch) => {
      for (const m of batch) {
        if (m.headers?.control === 'must-refetch') reject(new Error(`must-refetch after restart\nrequests:\n${log.join('\n')}`))
        switch (m.headers?.operation) {
          case 'insert': rows.set(m.key, m.value); break
          case 'update': rows.set(m.key, { ...rows.get(m.key), ...m.value }); break
          case 'delete': rows.delete(m.key); break
        }
      }
      if (stream.isUpToDate && JSON.stringify(sorted(rows)) === want) {
        clearTimeout(timer)
        resolve()
      }
    }, (e) => { clearTimeout(timer); reject(e) })
  })
  ac.abort()
  return stream
}

if (mode === 'save') {
  const rows = new Map()
  const stream = await follow({}, rows, [])
  fs.writeFileSync(stateFile, JSON.stringify({ handle: stream.shapeHandle, offset: stream.lastOffset, rows: [...rows] }))
} else if (mode === 'resume') {
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'))
  const rows = new Map(state.rows)
  const log = []
  await follow({ handle: state.handle, offset: state.offset }, rows, log)
  if (!log[0]?.includes(`offset=${state.offset}`) || !log[0]?.includes(`handle=${state.handle}`)) {
    throw new Error(`first request after restart did not resume: ${log[0]}`)
  }
  if (log.some((l) => l.includes('offset=-1'))) {
    throw new Error(`resumed stream synced from scratch:\n${log.join('\n')}`)
  }
} else {
  throw new Error(`unknown mode ${mode}`)
}
process.exit(0)
