package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voltsync/volt/internal/pgtest"
)

// TestClientExamplesRun runs examples/online and examples/optimistic, as
// the README tells, against a real volt: they show the client API and
// must keep working.
func TestClientExamplesRun(t *testing.T) {
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE todos (id uuid PRIMARY KEY, title text, done bool)`)
	v := startVolt(t, db, "VOLT_INSECURE_WRITES=true", "VOLT_LONG_POLL_TIMEOUT=2s")

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "github.com/voltsync/volt/examples/online", "github.com/voltsync/volt/examples/optimistic")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string // lines, in order
	}{
		{"online", []string{"-title", "write the docs"}, []string{"added ", "done=true   write the docs"}},
		{"optimistic", nil, []string{"shown at once (1 pending)", "insert: accepted", "toggle: accepted, done=true",
			"rolled back transaction 3: constraint", "done=true   water plants"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, filepath.Join(dir, tc.name), append([]string{"-url", v.URL}, tc.args...)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.name, err, out)
			}
			rest := string(out)
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%s's output lacks %q (in order):\n%s", tc.name, w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
