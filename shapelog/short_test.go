package shapelog

import (
	"flag"
	"math/rand"
	"os"
	"testing"
)

// byteStep is the stride of the every-byte crash tests: 1 normally; with
// -short (the race detector's pass in CI, where each reopen costs ten
// times as much) every 7th byte from a seeded starting point, so repeated
// short runs still reach every position.
var byteStep int64 = 1

func firstByte(r *rand.Rand) int64 { return r.Int63n(byteStep) }

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		byteStep = 7
		if *itersFlag == defaultIters {
			*itersFlag = defaultIters / 4
		}
	}
	os.Exit(m.Run())
}
