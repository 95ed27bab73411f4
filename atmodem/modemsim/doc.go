// Package modemsim is a stateful cellular modem for tests, demos and the
// `--modem sim:FILE` spec: it keeps a modem, a SIM and a network state,
// answers the common 3GPP TS 27.007 commands from that state in one of the
// dialects atmodem knows (generic, Quectel, SIMCom, u-blox, Telit, Sierra,
// Nordic, Fibocom, Huawei), and plays a scenario's timeline: URCs, SIM
// removal and swap, network changes, silence, reboots and unplugs.
//
// A Scenario (Parse, Load; the JSON of DESIGN.md §4, "Simulator scenario")
// sets the state, overrides answers to exact command lines, and lists the
// timeline. New makes a Sim of it; Serve answers one connection at a time
// over any io.ReadWriter (an in-process net.Pipe in unit tests), ServePTY
// over a real pseudo-terminal, so that the agent's serial path is the one
// exercised, and ServeListener/ServeUntil over a socket (tcp: specs).
// Start plays the timeline in real time, Apply plays one step now, and
// Respond adds an answer override from a test (counted with Times, with a
// channel closed once it has been used).
//
// The simulator is a test tool: the router builds leave it out (build tag
// mtc_omit_sim), and nothing here is reached from the agent's own code.
package modemsim
