//go:build linux

package attest

import "golang.org/x/sys/unix"

// kernelClockSynced asks the kernel whether an NTP client has disciplined
// the clock (adjtimex does not report TIME_ERROR / STA_UNSYNC).
func kernelClockSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
