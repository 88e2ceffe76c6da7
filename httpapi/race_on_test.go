//go:build race

package httpapi

// raceDetector is set when the tests run with -race, which enlarges every
// goroutine's frames: stack sizes are not what a production build holds.
const raceDetector = true
