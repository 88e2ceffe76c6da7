// Package testseed gives randomised tests a seed that is logged and can be
// set from the environment, so that any failure can be replayed:
//
//	VOLT_SEED=1234 go test -run TestX ./pkg/
//
// Without VOLT_SEED each call draws a fresh seed from the clock.
package testseed

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// Env is the environment variable that fixes the seed.
const Env = "VOLT_SEED"

// Seed returns the seed for the calling test and logs how to rerun with it.
// A malformed VOLT_SEED fails the test rather than being ignored.
func Seed(tb testing.TB) uint64 {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(Env); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("testseed: %s=%q is not an unsigned integer", Env, s)
		}
		seed = v
	}
	tb.Logf("seed %d (rerun with %s=%d)", seed, Env, seed)
	return seed
}

// Rand returns a generator seeded with Seed(tb); stream tells apart
// generators that one test draws from the same seed (one per goroutine).
func Rand(tb testing.TB, stream uint64) *rand.Rand {
	tb.Helper()
	return rand.New(rand.NewPCG(Seed(tb), stream))
}
