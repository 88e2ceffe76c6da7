package testseed

import (
	"testing"
)

func TestSeedFromEnvironment(t *testing.T) {
	t.Setenv(Env, "42")
	if got := Seed(t); got != 42 {
		t.Fatalf("Seed = %d with %s=42", got, Env)
	}
	a, b := Rand(t, 1), Rand(t, 1)
	for range 10 {
		if x, y := a.Uint64(), b.Uint64(); x != y {
			t.Fatalf("two generators of one seed and stream differ: %d, %d", x, y)
		}
	}
}
