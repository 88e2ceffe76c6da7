package shapelog

import (
	"math/rand"
	"strings"

	"github.com/voltsync/volt"
)

// model is an in-memory reference implementation of the paging rules.
type model struct {
	chunk     int
	snapRows  []string // including snapshot-end once finished
	finished  bool
	sealedAt  []int // snapshot: index after the last row of each sealed chunk
	snapBytes int
	live      []Entry
}

func (m *model) appendSnapshot(row string) {
	m.snapRows = append(m.snapRows, row)
	m.snapBytes += len(row) + 1
	if m.snapBytes >= m.chunk {
		m.sealedAt = append(m.sealedAt, len(m.snapRows))
		m.snapBytes = 0
	}
}

func (m *model) finish(last string) {
	m.snapRows = append(m.snapRows, last)
	m.sealedAt = append(m.sealedAt, len(m.snapRows))
	m.finished = true
}

// liveChunkEnds returns, for each sealed live chunk, the index after its
// last entry.
func (m *model) liveChunkEnds() []int {
	var ends []int
	sum := 0
	for i, e := range m.live {
		sum += len(e.JSON)
		if sum >= m.chunk {
			ends = append(ends, i+1)
			sum = 0
		}
	}
	return ends
}

func (m *model) latest() volt.Offset {
	if len(m.live) == 0 {
		return volt.SnapshotEnd
	}
	return m.live[len(m.live)-1].Offset
}

// read applies the paging rules; ok is false for ErrSnapshotPending.
func (m *model) read(after volt.Offset) (p page, ok bool) {
	switch {
	case after.IsBeforeAll():
		return m.snapPage(0)
	case after.InSnapshot() && after.Op != volt.OpInf:
		if after.Op+1 < uint64(len(m.sealedAt)) {
			return m.snapPage(int(after.Op) + 1)
		}
		if !m.finished {
			return page{}, false
		}
		return m.livePage(volt.SnapshotEnd), true
	}
	return m.livePage(after), true
}

func (m *model) snapPage(k int) (page, bool) {
	if k >= len(m.sealedAt) {
		return page{}, false
	}
	start := 0
	if k > 0 {
		start = m.sealedAt[k-1]
	}
	rows := m.snapRows[start:m.sealedAt[k]]
	return page{Entries: strings.Join(rows, "|"), End: snapOff(uint64(k)).String()}, true
}

func (m *model) livePage(after volt.Offset) page {
	latest := m.latest()
	if !after.Less(latest) {
		return page{End: after.String(), AtHead: true}
	}
	first := 0
	for !after.Less(m.live[first].Offset) {
		first++
	}
	end := len(m.live)
	for _, e := range m.liveChunkEnds() {
		if e > first {
			end = e
			break
		}
	}
	var s []string
	for _, e := range m.live[first:end] {
		s = append(s, string(e.JSON))
	}
	last := m.live[end-1].Offset
	return page{Entries: strings.Join(s, "|"), End: last.String(), AtHead: !last.Less(latest)}
}

// probeOffsets returns offsets worth reading at: every entry, its
// neighbours, every snapshot chunk and a few beyond the ends.
func (m *model) probeOffsets() []volt.Offset {
	out := []volt.Offset{volt.BeforeAll, volt.SnapshotEnd, off(1, 0)}
	for k := 0; k <= len(m.sealedAt)+1; k++ {
		out = append(out, snapOff(uint64(k)))
	}
	for _, e := range m.live {
		o := e.Offset
		out = append(out, o, off(o.LSN, o.Op+1), off(o.LSN-1, volt.OpInf), off(o.LSN, volt.OpInf))
		if o.Op > 0 {
			out = append(out, off(o.LSN, o.Op-1))
		}
	}
	l := m.latest()
	return append(out, off(l.LSN+1, 0))
}

// randJSON returns a distinct printable payload of n bytes (n >= 0).
func randJSON(r *rand.Rand, id, n int) string {
	s := []byte(strings.Repeat("x", n))
	tag := []byte{byte('a' + id%26), byte('a' + id/26%26), byte('a' + id/676%26)}
	copy(s, tag)
	for i := len(tag); i < n; i++ {
		s[i] = byte('a' + r.Intn(26))
	}
	return string(s)
}

// randTx returns a transaction of 1..maxOps entries after prev.
func randTx(r *rand.Rand, prev volt.Offset, id *int, maxOps, maxSize int) tx {
	lsn := prev.LSN + 1 + uint64(r.Intn(1000))
	n := 1 + r.Intn(maxOps)
	x := make(tx, n)
	op := uint64(r.Intn(3))
	for i := range x {
		*id++
		x[i] = Entry{Offset: off(lsn, op), JSON: []byte(randJSON(r, *id, 1+r.Intn(maxSize)))}
		op += 1 + uint64(r.Intn(3))
	}
	return x
}
