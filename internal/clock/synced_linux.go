//go:build linux

package clock

import "golang.org/x/sys/unix"

// kernelSynced asks the kernel whether an NTP client has disciplined
// the clock (adjtimex does not report TIME_ERROR / STA_UNSYNC).
func kernelSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
