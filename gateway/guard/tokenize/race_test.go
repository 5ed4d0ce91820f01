//go:build race

package tokenize

// raceEnabled shortens the slowest comparisons with the library under the
// race detector, which makes them about ten times slower.
const raceEnabled = true
