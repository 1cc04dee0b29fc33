//go:build race

package driver_test

// raceEnabled: the race detector slows every checkout several times over.
const raceEnabled = true
