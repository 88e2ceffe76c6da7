// Column types: the client must parse every value to what it parses for
// Electric, i.e. (for its default parser) what Postgres returns through `pg`
// when the same conventions are applied (see helpers.mjs). Both the initial
// snapshot and the replication stream are checked, since they format values
// through different paths.
import { test } from 'node:test'
import { connectPg, uniqueName, ident, openShape, initialRows, assertRowsEqual, waitForRows, SHAPE_URL, show } from './helpers.mjs'

const COLUMNS = `
  id int4 PRIMARY KEY,
  i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, num numeric, num_s numeric(12,3),
  txt text, vc varchar(20), ch char(6),
  b bool, u uuid, ts timestamptz, tsn timestamp, d date, tm time, iv interval,
  j json, jb jsonb, bin bytea,
  ia int4[], ia2 int4[][], i8a int8[], ta text[], ba bool[], fa float8[], ja jsonb[],
  nn text NOT NULL DEFAULT 'not null'`

// Literal values (as SQL) for a few rows; NULL rows are generated separately.
const ROWS = [
  {
    id: 1, i2: '1', i4: '42', i8: '9223372036854775807', f4: '3.14159', f8: '4.5', num: '12345678901234567890.123456789',
    num_s: '3.14159', txt: `'plain text'`, vc: `'varchar'`, ch: `'ab'`, b: 'true', u: `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`,
    ts: `'2024-02-29 12:34:56.789+02'`, tsn: `'2024-02-29 12:34:56.123456'`, d: `'2024-01-31'`, tm: `'23:59:59.5'`,
    iv: `'1 day 02:03:04'`, j: `'{ "a" : [1, 2.50, "x\\"y"], "nested": {"k": null} }'`, jb: `'{"b": [true, false], "a": 1.0}'`,
    bin: `'\\x00ff10'::bytea`, ia: `'{1,NULL,3}'`, ia2: `'{{1,2},{3,4}}'`, i8a: `'{9223372036854775807,-1}'`,
    ta: `'{"a b","c,d","e\\"f",NULL,"NULL","","{}"," spaced ","back\\\\slash"}'`, ba: `'{t,f,NULL}'`,
    fa: `'{1.5,NaN,-Infinity,0.1}'`, ja: `ARRAY['{"a": 1}'::jsonb, '[1, 2]'::jsonb, 'null'::jsonb]`,
  },
  {
    id: 2, i2: '-32768', i4: '-2147483648', i8: '-9223372036854775808', f4: `'NaN'`, f8: `'Infinity'`, num: `'NaN'`,
    num_s: '-0.001', txt: `E'unicode: \\u00e9\\u00e8 \\u2713 \\U0001D11E 日本語, quotes: ''single'' "double", backslash: \\\\, tab:\\t newline:\\n end'`,
    vc: `''`, ch: `'abcdef'`, b: 'false', u: `'00000000-0000-0000-0000-000000000000'`,
    ts: `'0044-03-15 12:00:00+00 BC'`, tsn: `'infinity'`, d: `'-infinity'`, tm: `'00:00:00'`,
    iv: `'-1 year 2 mons -3 days 04:05:06.789'`, j: `'"just a string"'`, jb: `'[]'`,
    bin: `''::bytea`, ia: `'{}'`, ia2: `'{}'`, i8a: `'{0}'`, ta: `'{}'`, ba: `'{}'`, fa: `'{-0,1e308,5e-324}'`, ja: `'{}'`,
  },
  {
    id: 3, i2: '0', i4: '0', i8: '0', f4: '-1.5e-10', f8: `'-Infinity'`, num: '0', num_s: '0', txt: `''`, vc: `'x'`, ch: `''`,
    b: 'true', u: `'ffffffff-ffff-ffff-ffff-ffffffffffff'`, ts: `'1970-01-01 00:00:00+00'`, tsn: `'2000-01-01 00:00:00'`,
    d: `'2000-02-29'`, tm: `'12:00:00.000001'`, iv: `'0'`, j: `'{}'`, jb: `'{"emoji": "\\ud83d\\ude00", "s": "a\\"b"}'`,
    bin: `decode('deadbeef', 'hex')`, ia: `'{-1}'`, ia2: `'{{NULL,2}}'`, i8a: `'{NULL}'`, ta: `'{"ü","\\"quoted\\""}'`, ba: `'{t}'`,
    fa: `'{NaN}'`, ja: `ARRAY['{"x": "y"}'::jsonb]`,
  },
]

function insertSql(T, row) {
  const cols = Object.keys(row)
  return `INSERT INTO ${T} (${cols.map(ident).join(', ')}) VALUES (${cols.map((c) => row[c]).join(', ')})`
}

// Raw snapshot over plain HTTP, used only to say *where* a mismatch comes
// from (volt's wire text vs the client's parsing) when the typed comparison fails.
async function rawDiagnosis(db, table, T) {
  const out = []
  try {
    let url = `${SHAPE_URL}?table=${encodeURIComponent(table)}&offset=-1`
    const wire = new Map()
    let schema
    for (let i = 0; i < 50; i++) {
      const res = await fetch(url)
      const body = await res.json()
      schema ??= res.headers.get('electric-schema')
      for (const m of body) if (m.key) wire.set(String(m.value.id), { ...(wire.get(String(m.value.id)) ?? {}), ...m.value })
      if (res.headers.has('electric-up-to-date') || body.some((m) => m.headers?.control === 'up-to-date')) break
      url = `${SHAPE_URL}?table=${encodeURIComponent(table)}&offset=${res.headers.get('electric-offset')}&handle=${res.headers.get('electric-handle')}`
    }
    out.push(`electric-schema: ${schema}`)
    const rawDb = await connectPg(undefined, { raw: true })
    const { rows: textRows, fields } = await rawDb.query(`SELECT * FROM ${T}`).finally(() => rawDb.end())
    const cols = fields.map((f) => f.name)
    for (const r of textRows) {
      const w = wire.get(r.id)
      if (!w) {
        out.push(`row id=${r.id}: missing on the wire`)
        continue
      }
      for (const c of cols) {
        const same = w[c] === r[c] || (r[c] === 't' && w[c] === 'true') || (r[c] === 'f' && w[c] === 'false') // §8.1: both bool forms are fine
        if (!same) out.push(`row id=${r.id} column ${c}: volt sent ${JSON.stringify(w[c])}, Postgres text is ${JSON.stringify(r[c])}`)
      }
    }
    if (out.length === 1) out.push('wire text of every column equals Postgres text output (so a mismatch is in parsing / schema)')
  } catch (e) {
    out.push(`raw diagnosis failed: ${e}`)
  }
  return out.join('\n')
}

test('many column types: snapshot and replication values parse to what Postgres returns', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_types')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (${COLUMNS})`)
  for (const row of ROWS) await db.query(insertSql(T, row))
  await db.query(`INSERT INTO ${T} (id) VALUES (4)`) // all nullable columns NULL
  const all = async () => (await db.query(`SELECT * FROM ${T}`)).rows

  const h = openShape(t, { table })
  const withDiagnosis = async (fn) => {
    try {
      await fn()
    } catch (e) {
      e.message += `\n--- raw wire vs Postgres text ---\n${(await rawDiagnosis(db, table, T)).slice(0, 4000)}`
      throw e
    }
  }
  await withDiagnosis(async () => assertRowsEqual(h, await initialRows(h), await all()))

  // the same values through the replication stream: inserts, and updates of every column
  await db.query(`INSERT INTO ${T} SELECT id + 100, i2, i4, i8, f4, f8, num, num_s, txt, vc, ch, b, u, ts, tsn, d, tm, iv, j, jb, bin, ia, ia2, i8a, ta, ba, fa, ja, nn FROM ${T}`)
  await withDiagnosis(async () => waitForRows(h, await all(), { what: 'typed values inserted through replication' }))

  const cols = 'i2, i4, i8, f4, f8, num, num_s, txt, vc, ch, b, u, ts, tsn, d, tm, iv, j, jb, bin, ia, ia2, i8a, ta, ba, fa, ja'
  await db.query(`UPDATE ${T} dst SET (${cols}) = (SELECT ${cols} FROM ${T} src WHERE src.id = CASE dst.id WHEN 1 THEN 2 WHEN 2 THEN 3 WHEN 3 THEN 4 ELSE 1 END) WHERE dst.id <= 4`)
  await withDiagnosis(async () => waitForRows(h, await all(), { what: 'typed values updated through replication' }))
})

test('not-null columns and schema header survive a live change', async (t) => {
  const db = await connectPg(t)
  const table = uniqueName('compat_notnull')
  const T = ident(table)
  await db.query(`CREATE TABLE ${T} (id int8 PRIMARY KEY, a text NOT NULL, b int4 NOT NULL, c bool NOT NULL)`)
  await db.query(`INSERT INTO ${T} VALUES (1, '', 0, false)`)
  const h = openShape(t, { table })
  assertRowsEqual(h, await initialRows(h), (await db.query(`SELECT * FROM ${T}`)).rows)
  await db.query(`UPDATE ${T} SET a = 'x', c = true WHERE id = 1`)
  await db.query(`INSERT INTO ${T} VALUES (2, 'two', 2, true)`)
  await waitForRows(h, (await db.query(`SELECT * FROM ${T}`)).rows, { what: 'changes on not-null columns' })
  void show
})
