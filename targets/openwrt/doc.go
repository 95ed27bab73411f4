// Package openwrt holds the OpenWrt packaging of mtcagent (mtcagent/: the
// package Makefile for the SDK using golang-package.mk, a procd init script
// with respawn, the UCI config /etc/config/mtcagent, and a tty hotplug
// script). There is no Go code to ship here.
//
// The tests run the init script and the hotplug script on the host under
// sh, with testdata/stubs.sh standing in for OpenWrt's /lib/functions.sh
// (same semantics for config_load, config_get, config_foreach, ...) and for
// procd (calls logged to a file), and stub uci/chgrp/chmod/chown/logger
// commands on PATH. The generated agent config is parsed with
// internal/config.
package openwrt
