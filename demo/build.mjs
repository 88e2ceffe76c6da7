// Builds the demo page into dist/: the bundle (esbuild, from npm), the
// HTML and CSS, PGlite's WebAssembly and data files, which PGlite loads
// from next to the bundle (new URL('./pglite.wasm', import.meta.url)), and
// pglite-seed.tar.gz: a PGlite data directory with pattern 4's local schema,
// made here by the same PGlite build in Node. A browser without the demo's
// database starts from it (loadDataDir) instead of running initdb in
// WebAssembly, which takes seconds.
// Run from the repository root: npm run build --prefix demo.
import { build } from 'esbuild'
import { cp, mkdir, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const dist = join(here, 'dist')
const require = createRequire(import.meta.url)
const pgliteDist = dirname(require.resolve('@electric-sql/pglite'))

await mkdir(dist, { recursive: true })
const started = Date.now()
await build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile: join(dist, 'app.js'),
  sourcemap: true,
  minify: true,
  logLevel: 'warning',
})
for (const f of ['index.html', 'style.css']) await cp(join(here, f), join(dist, f))
for (const f of ['pglite.wasm', 'pglite.data', 'initdb.wasm']) await cp(join(pgliteDist, f), join(dist, f))
// The seed takes seconds to make: it is made again only when the schema
// or PGlite changed since.
const seedFile = join(dist, 'pglite-seed.tar.gz')
const mtime = (f) => stat(f).then((s) => s.mtimeMs, () => 0)
const seedTime = await mtime(seedFile)
if (seedTime < (await mtime(join(here, 'src', 'local-schema.js'))) || seedTime < (await mtime(join(pgliteDist, '..', 'package.json')))) {
  const { PGlite } = await import('@electric-sql/pglite')
  const { SCHEMA } = await import('./src/local-schema.js')
  const seed = await PGlite.create()
  await seed.exec(SCHEMA)
  const tarball = await seed.dumpDataDir('gzip')
  await seed.close()
  await writeFile(seedFile, Buffer.from(await tarball.arrayBuffer()))
}
console.log(`demo: built ${dist} in ${Date.now() - started} ms`)
