//go:build !race

package mdtlog

const raceEnabled = false
