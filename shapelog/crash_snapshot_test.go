package shapelog

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt"
)

// TestSnapshotUnfinishedAfterCrash: a snapshot that never finished is
// reported incomplete and discarded; the live log survives and a new
// snapshot can be written.
func TestSnapshotUnfinishedAfterCrash(t *testing.T) {
	s := newStore(t, 10)
	l := mustCreate(t, s, "h")
	for _, row := range []string{"123456789", "abcdefghi", "xy"} { // two sealed chunks, one open
		if err := l.AppendSnapshot([]byte(row)); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, l, tx{{off(3, 0), []byte("live")}})
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed := newStore(t, 10)
	copyDir(t, l.dir, filepath.Join(crashed.dir, "h")) // kill -9 now
	for name, st := range map[string]*Store{"killed": crashed, "closed": s} {
		if st == s {
			l.Close()
		}
		r := mustOpen(t, st, "h")
		if r.SnapshotComplete() {
			t.Errorf("%s: SnapshotComplete = true", name)
		}
		runReadCases(t, r, []readCase{
			{after: "-1", pending: true},
			{after: "0_0", pending: true},
			{after: "0_inf", want: page{"live", "3_0", true}},
		})
		if n := fileLen(t, filepath.Join(r.dir, snapFile)); n != 0 {
			t.Errorf("%s: snapshot.dat keeps %d bytes", name, n)
		}
	}
	r, _ := crashed.Get("h")
	if err := r.AppendSnapshot([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := r.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	runReadCases(t, r, []readCase{{after: "-1", want: page{"again|END", "0_0", false}}})
}

// TestSnapshotTornFinish cuts the snapshot files at every byte: the
// snapshot counts as complete only with its final index record and all
// its data intact.
func TestSnapshotTornFinish(t *testing.T) {
	s := noFsync(newStore(t, 10))
	l := mustCreate(t, s, "h")
	for _, row := range []string{"123456789", "abcdefghi", "xy"} {
		if err := l.AppendSnapshot([]byte(row)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f := &crashFixture{dir: l.dir}
	work := noFsync(newFastStore(t, 10))
	for _, file := range []string{snapIdxFile, snapFile} {
		size := fileLen(t, filepath.Join(l.dir, file))
		for cut := int64(0); cut <= size; cut++ {
			r := f.reopen(t, work, func(dir string) { truncateFile(t, filepath.Join(dir, file), cut) })
			if got, want := r.SnapshotComplete(), cut == size; got != want {
				t.Errorf("%s cut at %d/%d: SnapshotComplete = %v", file, cut, size, got)
			}
			if cut == size {
				checkFollow(t, r, "123456789|abcdefghi|xy|END")
			}
			r.Close()
		}
	}
}

func checkFollow(t *testing.T, l *Log, want string) {
	t.Helper()
	if got := strings.Join(entriesOf(follow(t, l)), "|"); got != want {
		t.Errorf("follow = %q, want %q", got, want)
	}
}

// txGen generates the same transactions in the killed child and in the
// test that checks what it left.
type txGen struct {
	r    *rand.Rand
	prev volt.Offset
	id   int
}

func newTxGen() *txGen { return &txGen{r: rand.New(rand.NewSource(42))} }

func (g *txGen) next() tx {
	x := randTx(g.r, g.prev, &g.id, 6, 400)
	g.prev = x[len(x)-1].Offset
	return x
}

const killEnv = "SHAPELOG_KILL_DIR"

// TestKill9 runs a writer in a child process, kills it with SIGKILL at
// several points and checks that Open recovers whole transactions, at
// least up to the last completed Sync, with the same chunks as a model.
func TestKill9(t *testing.T) {
	if dir := os.Getenv(killEnv); dir != "" {
		killChild(dir)
		return
	}
	waits := []time.Duration{5 * time.Millisecond, 40 * time.Millisecond, 150 * time.Millisecond}
	if testing.Short() {
		waits = waits[1:2]
	}
	for round, wait := range waits {
		dir := t.TempDir()
		synced := runAndKill(t, dir, wait)
		s, err := OpenStore(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		l := mustOpen(t, s, "k")
		m := &model{chunk: l.ChunkBytes()}
		m.appendSnapshot("row")
		m.finish("END")
		g := newTxGen()
		for len(m.live) < countLive(t, l) {
			m.live = append(m.live, g.next()...)
		}
		if got := countLive(t, l); got != len(m.live) || len(m.live) < synced {
			t.Fatalf("round %d: recovered %d entries (tx boundary at %d), synced %d", round, got, len(m.live), synced)
		}
		t.Logf("round %d: %d entries recovered, %d synced before the kill", round, len(m.live), synced)
		checkFollowModel(t, l, m)
	}
}

func countLive(t *testing.T, l *Log) int {
	return len(entriesOf(follow(t, l))) - 2 // minus snapshot row and END
}

// runAndKill starts the child, lets it write for about wait after its
// first Sync, kills it and returns the number of entries it reported
// synced.
func runAndKill(t *testing.T, dir string, wait time.Duration) int {
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), killEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan int, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "synced %d", &n); err == nil {
				lines <- n
			}
		}
	}()
	synced, ok := <-lines
	if !ok {
		t.Fatal("child wrote nothing")
	}
	deadline := time.After(wait)
	for wait := true; wait; {
		select {
		case n, ok := <-lines:
			if ok {
				synced = n
			}
		case <-deadline:
			wait = false
		}
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	for n := range lines {
		synced = n
	}
	return synced
}

// killChild is the writer process: it appends generated transactions
// until killed (or for 30 s) and reports each completed Sync.
func killChild(dir string) {
	s, err := OpenStore(dir, Options{ChunkBytes: 2000})
	if err != nil {
		panic(err)
	}
	l, err := s.Create("k")
	if err != nil {
		panic(err)
	}
	if err := l.AppendSnapshot([]byte("row")); err != nil {
		panic(err)
	}
	if err := l.FinishSnapshot([]byte("END")); err != nil {
		panic(err)
	}
	g, n := newTxGen(), 0
	stop := time.Now().Add(30 * time.Second) // never outlive a crashed parent for long
	for i := 1; time.Now().Before(stop); i++ {
		x := g.next()
		if err := l.Append(x...); err != nil {
			panic(err)
		}
		n += len(x)
		if i%7 == 0 {
			if err := l.Sync(); err != nil {
				panic(err)
			}
			fmt.Printf("synced %d\n", n)
		}
	}
	os.Exit(0)
}
