// Drives the demo page in headless Chromium (Debian's package, through
// playwright-core) against a running `volt demo`, as a person would: two
// browser contexts (two devices: separate storage, separate PGlite) on
// the four lists, through the phases below. Each phase runs the four
// lists at once, since they are independent; each assertion waits for a
// DOM state (no sleeps) and fails the test if it does not come.
//
// Run by cmd/volt/demo_test.go (TestDemoBrowser), which starts the server
// and passes DEMO_URL, CHROMIUM and VOLT_ARTIFACTS (screenshots and
// final-state.json, which the Go test compares with Postgres).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const URL = process.env.DEMO_URL ?? 'http://localhost:3000/'
const ARTIFACTS = process.env.VOLT_ARTIFACTS ?? new globalThis.URL('../test-results', import.meta.url).pathname
const LISTS = ['online', 'optimistic', 'shared', 'pglite']
const QUEUEING = ['optimistic', 'shared', 'pglite'] // patterns 2-4 queue writes made offline
const TIMEOUT = 20_000

let browser, a, b // a and b: one page each, in separate contexts
const problems = [] // page errors and failed requests other than the offline switch's

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true })
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' })
  ;[a, b] = await Promise.all(['A', 'B'].map(openDevice))
  step('devices open')
})

after(async () => {
  await browser?.close()
  console.log(`screenshots and final-state.json: ${ARTIFACTS}`)
})

async function openDevice(name) {
  const ctx = await browser.newContext({ viewport: { width: 1500, height: 1000 } })
  ctx.setDefaultTimeout(TIMEOUT)
  const page = await ctx.newPage()
  page.name = name
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/offline|Failed to load resource/.test(m.text())) problems.push(`${name}: console error: ${m.text()}`)
  })
  await page.goto(URL)
  await started(page)
  return page
}

// started waits until every list runs and has synced once. PGlite's
// start is CPU-bound (seconds on a busy 2-core machine): it gets longer.
async function started(page) {
  for (const l of LISTS) await card(page, l).and(page.locator('[data-synced=true]:not(.starting)')).waitFor({ timeout: 150_000 })
}

const card = (page, list) => page.locator(`section[data-list=${list}]`)
const item = (page, list, title, state) =>
  card(page, list).locator(`li[data-title="${title}"]${state ? `[data-state=${state}]` : ''}`)
const notice = (page, list, kind, text) => card(page, list).locator(`ul.notices li[data-kind=${kind}]`, { hasText: text })

// act runs one user action at a time on a page: the lists' flows run
// concurrently, but typing and clicking need the page's focus and mouse.
// Waiting for states happens outside, concurrently.
function act(page, fn) {
  const run = (page.queue ?? Promise.resolve()).then(fn)
  page.queue = run.catch(() => {})
  return run
}

const add = (page, list, title) =>
  act(page, async () => {
    const input = card(page, list).locator('form.add input')
    await input.fill(title)
    await input.press('Enter')
  })

const rename = (page, list, from, to) =>
  act(page, async () => {
    await item(page, list, from).locator('button.edit').click()
    const input = card(page, list).locator('input.edit-title')
    await input.fill(to)
    await input.press('Enter')
  })

const click = (locator) => act(locator.page(), () => locator.click())
const tick = (locator) => act(locator.page(), () => locator.check())
const latency = (page, list, ms) => act(page, () => card(page, list).locator('select[data-action=latency]').selectOption(String(ms)))

async function setOffline(page, list, offline) {
  const button = card(page, list).locator('button[data-action=offline]')
  await act(page, async () => {
    if ((await button.getAttribute('aria-pressed')) !== String(offline)) await button.click()
  })
  await card(page, list).locator(`button[data-action=offline][aria-pressed=${offline}]`).waitFor()
}

async function armReject(page, list) {
  await click(card(page, list).locator('button[data-action=reject]'))
  await card(page, list).locator('button[data-action=reject][aria-pressed=true]').waitFor()
}

async function gone(locator) {
  await locator.waitFor({ state: 'detached' })
}

// titles reads a list's items as "title|state|done".
async function titles(page, list) {
  return card(page, list)
    .locator('ul.items li')
    .evaluateAll((lis) => lis.map((li) => `${li.dataset.title}|${li.dataset.state}|${li.classList.contains('done')}`).sort())
}

// converged waits until both devices show the same items, all confirmed.
async function converged(list) {
  const deadline = Date.now() + TIMEOUT
  let ta, tb
  for (;;) {
    ;[ta, tb] = await Promise.all([titles(a, list), titles(b, list)])
    const settled = ta.every((t) => t.includes('|confirmed|'))
    if (settled && JSON.stringify(ta) === JSON.stringify(tb)) return ta
    if (Date.now() > deadline) assert.deepEqual(tb, ta, `${list}: the two devices did not converge`)
    // Poll on the next DOM change of either card rather than on a timer.
    await Promise.race([a, b].map((p) => p.waitForFunction((l) => new Promise((resolve) => {
      const obs = new MutationObserver(() => resolve(true))
      obs.observe(document.querySelector(`section[data-list=${l}]`), { subtree: true, childList: true, attributes: true })
      setTimeout(() => resolve(true), 1000)
    }), list)))
  }
}

async function shoot(name) {
  await Promise.all([a, b].map((p) => p.screenshot({ path: join(ARTIFACTS, `${name}-${p.name}.png`), fullPage: true })))
}

// phase runs a test body and, when it fails, saves screenshots of both
// devices as they were.
const phase = (name, fn) =>
  test(name, async (t) => {
    try {
      await fn()
    } catch (err) {
      await shoot(`failed-${t.name.split(':')[0].replace(/\W+/g, '-')}`).catch(() => {})
      throw err
    }
  })

const t0 = Date.now()
const step = (what) => process.env.DEMO_DEBUG && console.log(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`)

const each = (lists, fn) => Promise.all(lists.map((l) => fn(l).catch((err) => {
  err.message = `${l} list: ${err.message}`
  throw err
})))

phase('add, edit, tick and delete; a second device converges both ways', async () => {
  await each(LISTS, async (l) => {
    await add(a, l, `${l}: buy milk`)
    await item(a, l, `${l}: buy milk`, 'confirmed').waitFor()
    step(`${l} added`)
    await add(a, l, `${l}: walk the dog`)
    await item(a, l, `${l}: walk the dog`, 'confirmed').waitFor()
    step(`${l} added 2`)
    await rename(a, l, `${l}: buy milk`, `${l}: buy oat milk`)
    await item(a, l, `${l}: buy oat milk`, 'confirmed').waitFor()
    await gone(item(a, l, `${l}: buy milk`))
    step(`${l} renamed`)
    await tick(item(a, l, `${l}: buy oat milk`).locator('input.done'))
    await card(a, l).locator(`li.done[data-title="${l}: buy oat milk"][data-state=confirmed]`).waitFor()
    step(`${l} ticked`)
    await click(item(a, l, `${l}: walk the dog`).locator('button.delete'))
    await gone(item(a, l, `${l}: walk the dog`))
    step(`${l} deleted`)
    await item(b, l, `${l}: buy oat milk`, 'confirmed').waitFor()
    step(`${l} B sees`)
    await add(b, l, `${l}: added on B`)
    await item(a, l, `${l}: added on B`, 'confirmed').waitFor()
    step(`${l} A sees B`)
    const rows = await converged(l)
    step(`${l} converged`)
    assert.deepEqual(rows, [`${l}: added on B|confirmed|false`, `${l}: buy oat milk|confirmed|true`])
  })
  await shoot('1-converged')
})

phase('latency: online writes block the list, the others show the write at once as pending', async () => {
  await each(LISTS, (l) => latency(a, l, 2000))
  await each(LISTS, (l) => add(a, l, `${l}: slow write`))
  // Pattern 1 shows nothing new until the server answered; its form is
  // disabled meanwhile. Patterns 2-4 show the item, pending.
  await card(a, 'online').locator('.status', { hasText: 'Waiting for the server' }).waitFor()
  assert.equal(await card(a, 'online').locator('form.add input').isDisabled(), true)
  assert.equal(await item(a, 'online', 'online: slow write').count(), 0)
  await each(QUEUEING, (l) => item(a, l, `${l}: slow write`, 'pending').waitFor())
  await shoot('2-latency')
  await each(LISTS, (l) => item(a, l, `${l}: slow write`, 'confirmed').waitFor())
  await each(LISTS, (l) => latency(a, l, 0))
  await each(LISTS, converged)
})

phase('offline: online writes fail, the others queue and deliver when back online; reads pause too', async () => {
  await each(LISTS, (l) => setOffline(a, l, true))
  // Pattern 1: the write fails and nothing changes.
  await add(a, 'online', 'online: written offline')
  await notice(a, 'online', 'error', 'offline').waitFor()
  assert.equal(await item(a, 'online', 'online: written offline').count(), 0)
  // Patterns 2-4: the write shows at once, queued.
  await each(QUEUEING, async (l) => {
    await add(a, l, `${l}: written offline`)
    await rename(a, l, `${l}: slow write`, `${l}: renamed offline`)
    await item(a, l, `${l}: written offline`, 'pending').locator('.badge', { hasText: 'offline' }).waitFor()
    await item(a, l, `${l}: renamed offline`, 'pending').waitFor()
  })
  // Meanwhile B writes; A, offline, must not see it.
  await each(LISTS, async (l) => {
    await add(b, l, `${l}: B while A was offline`)
    await item(b, l, `${l}: B while A was offline`, 'confirmed').waitFor()
  })
  await shoot('3-offline')
  for (const l of LISTS) {
    assert.equal(await item(a, l, `${l}: B while A was offline`).count(), 0, `${l}: A saw B's write while offline`)
    assert.equal(await item(b, l, `${l}: written offline`).count(), 0, `${l}: B saw A's offline write before A came online`)
  }
  await each(LISTS, (l) => setOffline(a, l, false))
  await each(QUEUEING, async (l) => {
    await item(a, l, `${l}: written offline`, 'confirmed').waitFor()
    await item(b, l, `${l}: renamed offline`, 'confirmed').waitFor()
  })
  await each(LISTS, (l) => item(a, l, `${l}: B while A was offline`, 'confirmed').waitFor())
  await each(LISTS, converged)
})

phase('a rejected write is rolled back and the server says why', async () => {
  // An insert, then an edit, each rejected by the server's switch.
  await each(LISTS, async (l) => {
    await armReject(a, l)
    await add(a, l, `${l}: will be rejected`)
    await notice(a, l, 'rejected', 'rejected on purpose').waitFor()
    await card(a, l).locator('button[data-action=reject][aria-pressed=false]').waitFor()
    await gone(item(a, l, `${l}: will be rejected`))
  })
  await each(LISTS, async (l) => {
    await armReject(a, l)
    await rename(a, l, `${l}: buy oat milk`, `${l}: rejected rename`)
    await card(a, l).locator('ul.notices li[data-kind=rejected]').nth(1).waitFor()
    await item(a, l, `${l}: buy oat milk`, 'confirmed').waitFor()
    await gone(item(a, l, `${l}: rejected rename`))
  })
  // Two queued writes to one row go out in one request: the first is
  // rejected, and the endpoint rejects the second as dependent on it.
  await each(QUEUEING, async (l) => {
    await setOffline(a, l, true)
    await add(a, l, `${l}: doomed`)
    await rename(a, l, `${l}: doomed`, `${l}: doomed, renamed`)
    await item(a, l, `${l}: doomed, renamed`, 'pending').waitFor()
    await armReject(a, l)
    await setOffline(a, l, false)
    await notice(a, l, 'rejected', 'dependent').waitFor()
    await gone(item(a, l, `${l}: doomed, renamed`))
  })
  await shoot('4-rejected')
  for (const l of LISTS) {
    const text = await card(a, l).locator('ul.notices li[data-kind=rejected]').first().textContent()
    assert.match(text, /will be rejected.*rejected on purpose.*rejected_by_demo/, `${l}: rejection notice`)
  }
  await each(LISTS, converged)
  for (const l of LISTS) assert.equal(await item(b, l, `${l}: will be rejected`).count(), 0)
  for (const l of QUEUEING) assert.equal(await item(b, l, `${l}: doomed`).count(), 0)
})

phase('reload: what each pattern keeps', async () => {
  // A write still queued at reload: lost in memory (2), kept and then
  // delivered from localStorage (3) and from PGlite (4).
  await each(QUEUEING, async (l) => {
    await setOffline(a, l, true)
    await add(a, l, `${l}: pending at reload`)
    await item(a, l, `${l}: pending at reload`, 'pending').waitFor()
  })
  const initial = new Set() // tables requested from the start (offset=-1) after the reload
  const onRequest = (r) => {
    const u = new globalThis.URL(r.url())
    if (u.pathname === '/v1/shape' && u.searchParams.get('offset') === '-1') initial.add(u.searchParams.get('table'))
  }
  a.on('request', onRequest)
  await a.reload()
  await started(a)
  a.off('request', onRequest)
  // Pattern 4 keeps its synced rows and the shape's offset in PGlite, so it
  // resumes the shape; the others keep no rows and start over.
  assert.deepEqual([...initial].sort(), ['todos_online', 'todos_optimistic', 'todos_shared'])
  await each(['shared', 'pglite'], (l) => item(a, l, `${l}: pending at reload`, 'confirmed').waitFor())
  await each(['shared', 'pglite'], (l) => item(b, l, `${l}: pending at reload`, 'confirmed').waitFor())
  assert.equal(await item(a, 'optimistic', 'optimistic: pending at reload').count(), 0, 'pattern 2 kept an unsent write across a reload')
  // Rejection notices are kept with the overlay (3, 4), not in memory (1, 2).
  for (const l of ['shared', 'pglite']) assert.equal(await card(a, l).locator('ul.notices li[data-kind=rejected]').count(), 4, l)
  for (const l of ['online', 'optimistic']) assert.equal(await card(a, l).locator('ul.notices li').count(), 0, l)
  const final = {}
  await each(LISTS, async (l) => {
    final[l] = await converged(l)
  })
  assert.equal(await item(b, 'optimistic', 'optimistic: pending at reload').count(), 0)
  await shoot('5-after-reload')
  await writeFile(join(ARTIFACTS, 'final-state.json'), JSON.stringify(final, null, 2))
  assert.deepEqual(problems, [], 'errors in the pages')
})
