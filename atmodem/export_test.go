package atmodem

// StatusWait gives the external tests the monitor's status-change signal:
// the status now and a channel closed at its next change.
func StatusWait(m *Monitor) (*Status, <-chan struct{}) { return m.statusWait() }
