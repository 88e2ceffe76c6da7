// The page: four lists side by side, one per write pattern, each with its
// own simulated network (net.js) and its own table on the server.
import { Net } from './net.js'
import { ListView } from './view.js'
import { rejectSwitches, setRejectNext } from './api.js'
import { onlineList } from './online.js'
import { optimisticList } from './optimistic.js'
import { sharedList } from './shared.js'
import { throughDbList } from './throughdb.js'

const LISTS = [
  {
    list: 'online',
    title: 'Online writes',
    summary: 'Each write waits for the server. Nothing is kept in the browser.',
    start: onlineList,
  },
  {
    list: 'optimistic',
    title: 'Optimistic state',
    summary: 'Writes show at once, held in memory until the server confirms them. A reload drops what is still pending.',
    start: optimisticList,
  },
  {
    list: 'shared',
    title: 'Shared persistent state',
    summary: 'Optimistic too, but your writes live in an overlay in localStorage, merged with the synced rows on read. Survives a reload.',
    start: sharedList,
  },
  {
    list: 'pglite',
    title: 'Through the database',
    summary: 'PGlite in the browser: a synced table, an overlay, a view with triggers, and an outbox that a loop sends.',
    start: throughDbList,
  },
]

const grid = document.querySelector('#lists')
const views = new Map()
LISTS.forEach((spec, i) => {
  const root = document.createElement('section')
  grid.append(root)
  const view = new ListView(root, { ...spec, number: i + 1 })
  const net = new Net(spec.list)
  views.set(spec.list, view)
  wireControls(view, net, spec.list)
  Promise.resolve()
    .then(() => spec.start({ view, net }))
    .catch((err) => {
      console.error(spec.list, err)
      view.render({ items: [], status: `This list failed to start: ${err.message ?? err}` })
    })
})

function wireControls(view, net, list) {
  const { offline, latency, reject } = view.controls()
  offline.addEventListener('click', () => net.setOffline(!net.offline))
  latency.addEventListener('change', () => net.setLatency(Number(latency.value)))
  net.addEventListener('change', () => {
    offline.setAttribute('aria-pressed', String(net.offline))
    offline.querySelector('.label').textContent = net.offline ? 'Offline' : 'Online'
    view.root.classList.toggle('offline', net.offline)
  })
  reject.addEventListener('click', async () => {
    const armed = reject.getAttribute('aria-pressed') !== 'true'
    showSwitch(reject, await setRejectNext(list, armed))
  })
  // The server disarms the switch when it rejects; a new rejection notice
  // is the moment to look.
  let rejections = 0
  const render = view.render.bind(view)
  view.render = (state) => {
    render(state)
    const n = (state.notices ?? []).filter((x) => x.kind === 'rejected').length
    if (n !== rejections) {
      rejections = n
      refreshSwitches()
    }
  }
}

function showSwitch(button, armed) {
  button.setAttribute('aria-pressed', String(Boolean(armed)))
  button.textContent = armed ? 'Next write: rejected' : 'Reject next'
}

async function refreshSwitches() {
  const state = await rejectSwitches().catch(() => ({}))
  for (const [list, view] of views) showSwitch(view.controls().reject, state[list])
}
refreshSwitches()
