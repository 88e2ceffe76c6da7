// Echo tells whether a write accepted by POST /v1/mutations is in the rows
// a shape has delivered, so that the page can drop its optimistic copy
// without the row flickering back to the old value. It follows the rules of
// volt's Go client (client/txid.go, client/await.go):
//
//   - a change message carries the txids of its Postgres transaction
//     (headers.txids); once an up-to-date follows, those transactions are
//     in the rows;
//   - a snapshot-end (initial sync, after a reload) carries the snapshot's
//     xmin/xmax/xip_list: a transaction committed before it is in the rows;
//   - an up-to-date's global_last_seen_lsn at or past the write's commit
//     LSN (the result's lsn) means the server has processed the write, even
//     if it changed no row of the shape.
//
// A replayed result (the answer to an earlier attempt was lost) has a txid
// but no lsn: it counts as echoed when its txid shows, or at the first
// up-to-date after the answer arrived, by when the server's shape has long
// processed a transaction that committed before the resend.

export class Echo {
  #pending = new Set()
  #seen = new Set()
  #snapshots = []
  lsn = 0n // highest global_last_seen_lsn
  upToDates = 0 // up-to-date messages so far

  constructor(lsn = 0n) {
    this.lsn = lsn
  }

  // record takes a batch of shape messages, in order.
  record(messages) {
    for (const m of messages) {
      const h = m.headers ?? {}
      if (h.control === 'up-to-date') {
        for (const t of this.#pending) this.#seen.add(t)
        this.#pending.clear()
        if (h.global_last_seen_lsn) {
          const l = BigInt(h.global_last_seen_lsn)
          if (l > this.lsn) this.lsn = l
        }
        this.upToDates++
      } else if (h.control === 'snapshot-end') {
        this.#snapshots.push({ xmin: BigInt(h.xmin), xmax: BigInt(h.xmax), xip: (h.xip_list ?? []).map(BigInt) })
        if (this.#snapshots.length > 16) this.#snapshots.shift()
      } else if (h.control === 'must-refetch') {
        this.#pending.clear()
      } else if (h.operation) {
        for (const t of h.txids ?? []) this.#pending.add(Number(t))
      }
    }
  }

  // sees reports whether the accepted result (with answeredAt, the value of
  // upToDates when its answer arrived) is in the shape's rows.
  sees(result, answeredAt = Infinity) {
    if (result.txid != null && this.#seen.has(Number(result.txid))) return true
    if (result.txid != null && this.#snapshots.some((s) => visible(s, Number(result.txid)))) return true
    if (result.lsn && this.lsn >= BigInt(result.lsn)) return true
    return Boolean(result.replayed && !result.lsn && this.upToDates > answeredAt)
  }
}

// xid8 rebuilds a 64-bit xid from its low 32 bits and a nearby xid8.
function xid8(xid, ref) {
  const low = BigInt.asUintN(32, ref)
  let diff = BigInt.asIntN(32, BigInt(xid) - low)
  let x = ref + diff
  if (x < 0n) x += 1n << 32n
  return x
}

function visible(s, xid) {
  const x = xid8(xid, s.xmax)
  if (x < s.xmin) return true
  if (x >= s.xmax) return false
  return !s.xip.includes(x)
}
