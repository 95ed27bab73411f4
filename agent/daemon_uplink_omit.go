//go:build mtc_omit_coap

package agent

// openUplink in a build without the CoAP/DTLS uplink: the agent signs and
// keeps everything in its outbox; a config that asks for an uplink is
// refused rather than silently never delivered.
func (d *Daemon) openUplink(DurableQueue) error {
	if d.cfg.Uplink != nil {
		return ErrNoUplinkBuild
	}
	d.log.Info("this build has no uplink (mtc_omit_coap): events are signed and kept in the outbox only")
	return nil
}
