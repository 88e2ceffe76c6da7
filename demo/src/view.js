// ListView draws one pattern's card: the network controls, the add form,
// the items with their state, and the notices (rejections, failures).
// It holds no data: each pattern calls render() with what it has.
//
// Every item carries data-state ("pending" or "confirmed") and data-title,
// and every notice data-kind, so the browser test reads the same thing a
// person sees.

const LATENCIES = [
  [0, 'No latency'],
  [500, '0.5 s latency'],
  [2000, '2 s latency'],
  [5000, '5 s latency'],
]

export class ListView {
  constructor(root, { list, number, title, summary }) {
    this.root = root
    this.handlers = {}
    this.editing = null // id of the item whose title is being edited
    root.classList.add('card')
    root.dataset.list = list
    root.innerHTML = `
      <header>
        <div class="num">${number}</div>
        <div>
          <h2>${title}</h2>
          <p class="summary">${summary}</p>
        </div>
      </header>
      <div class="controls">
        <button type="button" class="net" data-action="offline" aria-pressed="false" title="Cut this list's network (its shape requests and its writes)"><span class="dot"></span><span class="label">Online</span></button>
        <select data-action="latency" aria-label="Latency" title="Delay each request of this list">${LATENCIES.map(([v, l]) => `<option value="${v}">${l}</option>`).join('')}</select>
        <button type="button" class="reject" data-action="reject" aria-pressed="false" title="Ask the server to reject this list's next transaction">Reject next</button>
      </div>
      <form class="add" autocomplete="off">
        <input name="title" placeholder="What needs doing?" aria-label="New to-do">
        <button type="submit">Add</button>
      </form>
      <div class="status" data-role="status" aria-live="polite"></div>
      <ul class="items" data-role="items"></ul>
      <p class="empty" data-role="empty">Nothing to do.</p>
      <ul class="notices" data-role="notices"></ul>
      <footer class="meta" data-role="meta"></footer>`
    this.form = root.querySelector('form.add')
    this.itemsEl = root.querySelector('[data-role=items]')
    this.form.addEventListener('submit', (e) => {
      e.preventDefault()
      const input = this.form.elements.title
      const title = input.value.trim()
      if (!title || !this.handlers.onAdd) return
      input.value = ''
      this.handlers.onAdd(title)
    })
    this.itemsEl.addEventListener('click', (e) => this.#onItemClick(e))
    this.itemsEl.addEventListener('change', (e) => {
      if (e.target.matches('input.done')) this.handlers.onToggle(e.target.closest('li').dataset.id, e.target.checked)
    })
    this.itemsEl.addEventListener('keydown', (e) => {
      if (!e.target.matches('input.edit-title')) return
      const id = e.target.closest('li').dataset.id
      if (e.key === 'Enter') {
        e.preventDefault()
        const title = e.target.value.trim()
        this.editing = null
        if (title) this.handlers.onRename(id, title)
        this.handlers.onRedraw?.()
      } else if (e.key === 'Escape') {
        this.editing = null
        this.handlers.onRedraw?.()
      }
    })
    root.querySelector('[data-role=notices]').addEventListener('click', (e) => {
      const b = e.target.closest('button.dismiss')
      if (b) this.handlers.onDismiss?.(b.closest('li').dataset.id)
    })
  }

  #onItemClick(e) {
    const li = e.target.closest('li')
    if (!li) return
    if (e.target.closest('button.delete')) this.handlers.onDelete(li.dataset.id)
    if (e.target.closest('button.edit')) {
      this.editing = li.dataset.id
      this.handlers.onRedraw?.()
      const input = li.querySelector('input.edit-title')
      input?.focus()
      input?.select()
    }
  }

  // controls returns the card's network and reject controls for main.js.
  controls() {
    return {
      offline: this.root.querySelector('[data-action=offline]'),
      latency: this.root.querySelector('[data-action=latency]'),
      reject: this.root.querySelector('[data-action=reject]'),
    }
  }

  // render draws items [{id, title, done, state, detail}], notices [{id,
  // kind, title, text}], status (a line under the form), busy (disables
  // the list's inputs while a write is in flight), meta (footer text) and
  // synced (the shape has been up to date since the page loaded).
  render({ items, notices = [], status = '', busy = false, meta = '', synced = false }) {
    const old = new Map([...this.itemsEl.children].map((li) => [li.dataset.id, li]))
    const lis = items.map((it) => {
      if (it.id === this.editing && old.get(it.id)?.classList.contains('editing')) {
        const li = old.get(it.id)
        li.dataset.state = it.state
        return li
      }
      return this.#item(it, busy)
    })
    if (this.editing && !items.some((it) => it.id === this.editing)) this.editing = null
    this.itemsEl.replaceChildren(...lis)
    this.root.querySelector('[data-role=empty]').hidden = items.length > 0 || !synced
    this.root.querySelector('[data-role=notices]').replaceChildren(...notices.map((n) => this.#notice(n)))
    const st = this.root.querySelector('[data-role=status]')
    st.textContent = status
    st.hidden = !status
    this.root.querySelector('[data-role=meta]').textContent = meta
    this.root.classList.toggle('busy', Boolean(busy))
    this.root.dataset.synced = String(Boolean(synced)) // the list has been up to date
    // Until the pattern is running (PGlite takes a few seconds), and while
    // pattern 1 waits for the server, the form takes no input.
    const ready = Boolean(this.handlers.onAdd)
    this.root.classList.toggle('starting', !ready)
    for (const el of this.form.elements) el.disabled = Boolean(busy) || !ready
  }

  #item(it, busy) {
    const li = el('li', { 'data-id': it.id, 'data-state': it.state, 'data-title': it.title })
    li.classList.toggle('done', Boolean(it.done))
    const box = el('input', { type: 'checkbox', class: 'done', 'aria-label': 'Done' })
    box.checked = Boolean(it.done)
    box.disabled = busy
    li.append(box)
    if (it.id === this.editing) {
      li.classList.add('editing')
      const input = el('input', { class: 'edit-title', 'aria-label': 'Title' })
      input.value = it.title
      li.append(input)
    } else {
      li.append(el('span', { class: 'title' }, it.title))
    }
    const badge = el('span', { class: `badge ${it.state}`, title: it.detail ?? '' }, it.state === 'pending' ? it.detail || 'pending' : 'confirmed')
    li.append(badge)
    const edit = el('button', { type: 'button', class: 'edit', title: 'Edit', 'aria-label': 'Edit' }, '✎')
    const del = el('button', { type: 'button', class: 'delete', title: 'Delete', 'aria-label': 'Delete' }, '✕')
    edit.disabled = del.disabled = busy
    li.append(edit, del)
    return li
  }

  #notice(n) {
    const li = el('li', { class: `notice ${n.kind}`, 'data-id': n.id, 'data-kind': n.kind })
    li.append(el('strong', {}, n.title), ' ', el('span', { class: 'text' }, n.text))
    if (this.handlers.onDismiss) li.append(el('button', { type: 'button', class: 'dismiss', title: 'Dismiss' }, '×'))
    return li
  }
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  if (text != null) e.textContent = text
  return e
}

// describe names a write for a notice: add “milk”, rename “milk” to
// “oat milk”, tick “milk”, delete “milk”.
export function describe(m, before) {
  const name = (t) => `“${t}”`
  if (m.op === 'insert') return `add ${name(m.values.title)}`
  if (m.op === 'delete') return `delete ${name(before?.title ?? 'an item')}`
  if ('title' in m.values) return `rename ${name(before?.title ?? '…')} to ${name(m.values.title)}`
  return `${m.values.done ? 'tick' : 'untick'} ${name(before?.title ?? 'an item')}`
}
