//go:build race

package mdtlog

// raceEnabled: the race detector makes each child start ~10x slower, so the
// kill test runs fewer rounds there (the plain native run does all 200).
const raceEnabled = true
