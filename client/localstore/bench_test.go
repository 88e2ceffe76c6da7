package localstore

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/voltsync/volt/client"

	"github.com/voltsync/volt"
)

// BenchmarkApplySynced applies a 1000-row batch of inserts to a synced
// table (rows/s), beside the same rows through a plain prepared INSERT in
// one transaction of a plain table.
func BenchmarkApplySynced(b *testing.B) {
	const rows = 1000
	db, err := Open(filepath.Join(b.TempDir(), "s.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Declare("todos", "todos", todoSchema); err != nil {
		b.Fatal(err)
	}
	if _, err := db.sql.Exec(`CREATE TABLE plain (id TEXT PRIMARY KEY, title TEXT, done INTEGER, meta TEXT)`); err != nil {
		b.Fatal(err)
	}
	batch := client.Batch{Handle: "h", Offset: "0_0"}
	for i := 0; i < rows; i++ {
		batch.Events = append(batch.Events, &client.Change{Operation: volt.OpInsert,
			Value: client.Row{"id": fmt.Sprint("r", i), "title": "a title", "done": i%2 == 0, "meta": nil}})
	}
	b.Run("synced", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := db.applyBatch("todos", "todos", todoSchema, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("plain", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			tx, _ := db.sql.Begin()
			st, _ := tx.Prepare(`INSERT OR REPLACE INTO plain VALUES (?, ?, ?, ?)`)
			for j := 0; j < rows; j++ {
				if _, err := st.Exec(fmt.Sprint("r", j), "a title", j%2, nil); err != nil {
					b.Fatal(err)
				}
			}
			st.Close()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkLocalWrite measures one local write through the view (trigger,
// overlay and outbox) as its own Update, beside a plain INSERT in its own
// Update.
func BenchmarkLocalWrite(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "s.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Declare("todos", "todos", todoSchema); err != nil {
		b.Fatal(err)
	}
	if _, err := db.sql.Exec(`CREATE TABLE plain (id TEXT PRIMARY KEY, title TEXT, done INTEGER, meta TEXT)`); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, stmt string }{
		{"view", `INSERT INTO todos(id, title, done) VALUES (?, 'a title', 0)`},
		{"plain", `INSERT INTO plain(id, title, done) VALUES (?, 'a title', 0)`},
	} {
		n := 0
		b.Run(c.name, func(b *testing.B) {
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				n++
				err := db.Update(func(tx *Tx) error {
					_, err := tx.Exec(c.stmt, fmt.Sprint("k", n))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU reports the process's CPU time (user and system) per op when
// the returned func runs: on a loaded machine wall time per op also counts
// waiting for a CPU, CPU time does not.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

func cpuTime() time.Duration {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
		return 0
	}
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
