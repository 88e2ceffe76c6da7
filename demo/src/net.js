// A list's network, as the page simulates it: every request of the list
// (the official client's shape requests and the writes to
// POST /v1/mutations) goes through Net.fetch, so "offline" and "latency"
// are what the client really sees, not a flag the UI reads.
//
// Offline: a request fails at once with a TypeError, as fetch does when the
// browser has no network. A request already on its way when the list goes
// offline loses its answer (the server may have acted on it): the same
// failure is thrown when the answer arrives. That is the case that makes
// retries need exactly-once delivery (client_id + seq).
//
// Latency: half of it before the request leaves, half after the answer
// arrives.

export class Net extends EventTarget {
  constructor(name) {
    super()
    this.name = name
    this.offline = false
    this.latency = 0
  }

  setOffline(offline) {
    if (this.offline === offline) return
    this.offline = offline
    this.dispatchEvent(new Event('change'))
  }

  setLatency(ms) {
    this.latency = ms
    this.dispatchEvent(new Event('change'))
  }

  // fetch has the signature of window.fetch (ShapeStream's fetchClient).
  fetch = async (input, init = {}) => {
    this.#check()
    await sleep(this.latency / 2, init.signal)
    this.#check()
    const res = await fetch(input, init)
    await sleep(this.latency / 2, init.signal)
    this.#check()
    return res
  }

  #check() {
    if (this.offline) throw new TypeError(`Failed to fetch: the ${this.name} list is offline`)
  }

  // online resolves when the list is (or comes back) online.
  online() {
    if (!this.offline) return Promise.resolve()
    return new Promise((resolve) => {
      const on = () => {
        if (!this.offline) {
          this.removeEventListener('change', on)
          resolve()
        }
      }
      this.addEventListener('change', on)
    })
  }
}

// sleep waits ms, or rejects when signal aborts.
export function sleep(ms, signal) {
  if (!ms) return signal?.aborted ? Promise.reject(signal.reason) : Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms)
    function done() {
      signal?.removeEventListener('abort', abort)
      resolve()
    }
    function abort() {
      clearTimeout(timer)
      reject(signal.reason ?? new DOMException('aborted', 'AbortError'))
    }
    if (signal?.aborted) return abort()
    signal?.addEventListener('abort', abort, { once: true })
  })
}

// isNetworkError tells a failed request (retry it) from a bug.
export function isNetworkError(err) {
  return err instanceof TypeError || err?.name === 'NetworkError'
}
