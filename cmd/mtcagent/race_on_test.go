//go:build race

package main

// raceEnabled: the race detector multiplies memory use (shadow memory),
// so RSS bounds are scaled.
const raceEnabled = true
