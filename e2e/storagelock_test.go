package e2e

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecondInstanceOnSameStorage: with -standby=false, a second volt
// serve on a storage directory in use exits at once with one sentence
// naming the owner, and
// the first keeps serving; before, the second took the first one's
// embedded Postgres for a leftover and stopped it, and the first answered
// 503 from then on.
func TestSecondInstanceOnSameStorage(t *testing.T) {
	first := startVolt(t, "") // the embedded Postgres, under the storage dir
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, voltBin, "serve")
	cmd.Env = append(os.Environ(), "VOLT_STORAGE_DIR="+first.Storage, "VOLT_PORT="+strconv.Itoa(freePort(t)),
		"VOLT_REPLICATION_STREAM_ID=second", "VOLT_STANDBY=false")
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the second instance did not exit with an error (err %v):\n%s", err, out)
	}
	if !strings.Contains(string(out), "is in use by another volt (pid "+strconv.Itoa(first.PID())+")") {
		t.Fatalf("the second instance's message does not name the first:\n%s", out)
	}
	r := get(t, first.URL+"/v1/shape?table=pg_class_probe&offset=-1")
	if r.Status >= 500 {
		t.Fatalf("the first instance answers %d after the second tried to start: %s", r.Status, r.Body)
	}
	h := get(t, first.URL+"/v1/health")
	if h.Status != 200 || !strings.Contains(string(h.Body), "active") {
		t.Fatalf("the first instance is not healthy: %d %s", h.Status, h.Body)
	}
}
