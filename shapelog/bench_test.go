package shapelog

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

const benchEntrySize = 200

func benchTx(lsn uint64, n int, payload []byte) []Entry {
	x := make([]Entry, n)
	for i := range x {
		x[i] = Entry{Offset: off(lsn, uint64(2*i)), JSON: payload}
	}
	return x
}

// BenchmarkAppendSync measures durable write throughput: each op appends
// a transaction of txSize 200-byte entries; Sync runs every syncEvery
// transactions (group commit).
func BenchmarkAppendSync(b *testing.B) {
	for _, c := range []struct{ txSize, syncEvery int }{{1, 1}, {10, 1}, {10, 100}, {100, 10}} {
		b.Run(fmt.Sprintf("tx%d-sync%d", c.txSize, c.syncEvery), func(b *testing.B) {
			l := mustCreate(b, newStore(b, DefaultChunkBytes), "bench")
			payload := bytes.Repeat([]byte("x"), benchEntrySize)
			b.SetBytes(int64(c.txSize * benchEntrySize))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := l.Append(benchTx(uint64(i+1), c.txSize, payload)...); err != nil {
					b.Fatal(err)
				}
				if (i+1)%c.syncEvery == 0 {
					if err := l.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := l.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*c.txSize)/time.Since(start).Seconds(), "entries/s")
		})
	}
}

// buildBenchLog writes n 200-byte entries in transactions of 10.
func buildBenchLog(b *testing.B, n, chunk int) *Log {
	l := mustCreate(b, newStore(b, chunk), "bench")
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte("y"), benchEntrySize)
	for i := 0; i < n/10; i++ {
		if err := l.Append(benchTx(uint64(i+1), 10, payload)...); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkReadCatchUp measures a client catching up: each op follows the
// whole live log (100k entries, 20 MB) from 0_inf to the head.
func BenchmarkReadCatchUp(b *testing.B) {
	for _, chunk := range []int{10_000, DefaultChunkBytes} {
		b.Run(fmt.Sprintf("chunk%d", chunk), func(b *testing.B) {
			const n = 100_000
			l := buildBenchLog(b, n, chunk)
			b.SetBytes(n * benchEntrySize)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				got := 0
				for at := volt.SnapshotEnd; ; {
					r, err := l.Read(at)
					if err != nil {
						b.Fatal(err)
					}
					got += len(r.Entries)
					if r.AtHead {
						break
					}
					at = r.End
				}
				if got != n {
					b.Fatalf("read %d entries, want %d", got, n)
				}
			}
			b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "entries/s")
		})
	}
}

// BenchmarkReadAtHead measures the long-poll case: a reader one
// transaction behind the head of a large open chunk.
func BenchmarkReadAtHead(b *testing.B) {
	l := buildBenchLog(b, 40_000, DefaultChunkBytes) // 8 MB, all in the open chunk
	at := off(uint64(40_000/10-1), 18)               // last entry of the previous tx
	b.SetBytes(10 * benchEntrySize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := l.Read(at)
		if err != nil || len(r.Entries) != 10 || !r.AtHead {
			b.Fatalf("Read = %d entries, head %v, %v", len(r.Entries), r.AtHead, err)
		}
	}
}

// BenchmarkReopen opens and closes a log with a complete 500-row snapshot
// and 100 live transactions: what the shape cache pays to append to a
// shape whose log it had closed.
func BenchmarkReopen(b *testing.B) {
	s := newStore(b, DefaultChunkBytes)
	l := mustCreate(b, s, "h-1")
	for i := 0; i < 500; i++ {
		if err := l.AppendSnapshot([]byte(`{"key":"k","value":{"id":"1","title":"a title"}}`)); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.FinishSnapshot([]byte(`{"end":1}`)); err != nil {
		b.Fatal(err)
	}
	for i := uint64(1); i <= 100; i++ {
		mustAppend(b, l, tx{{off(i, 0), []byte(`{"key":"k","value":{"id":"1","title":"a title"}}`)}})
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := s.Open("h-1")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
