// A fetch wrapper recording every request and volt's answer (status, the
// electric-* headers, the first 6000 characters of the body) for failure
// diagnostics; the log is printed with helpers.mjs' formatLog. Used where the
// client is not created through helpers.mjs' openShape (pglite-sync,
// TanStack DB).
export function loggingFetch(log) {
  return async (input, init) => {
    const entry = {
      n: log.length + 1,
      at: Date.now(),
      method: init?.method ?? (input instanceof Request ? input.method : 'GET'),
      url: decodeURIComponent(String(input instanceof Request ? input.url : input)).replace(/^https?:\/\/[^/]+/, ''),
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
    for (const [k, v] of res.headers) if (k.startsWith('electric-') || k === 'content-type') entry.headers[k] = v
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
    return res
  }
}
