// Package debian holds the Debian / Raspberry Pi OS packaging of mtcagent:
// build-deb.sh (called by `make deb`) assembles a .deb with dpkg-deb from a
// cross-built binary, the documented default config (a conffile), a
// hardened systemd unit, maintainer scripts that create the "mtcagent"
// system user (in group dialout) and an opt-in udev rule that keeps
// ModemManager off the agent's AT port.
//
// There is no Go code to ship here; the test builds the amd64 package,
// unpacks it into a throwaway root with dpkg-deb -x/-e and checks files,
// modes, conffiles, maintainer scripts (run against stub commands) and the
// unit (with systemd-analyze verify where that command exists). It skips
// only when dpkg-deb is missing.
package debian
