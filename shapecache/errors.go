package shapecache

import "errors"

// ErrOverloaded is returned by GetOrCreate when a new shape cannot be
// created now: the shape limit or the concurrent snapshot limit is
// reached. The HTTP layer answers 503 with retry-after.
var ErrOverloaded = errors.New("shapecache: overloaded")
