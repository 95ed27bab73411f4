//go:build race

package collector

func init() { raceEnabled = true }
