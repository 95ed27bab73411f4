//go:build mtc_test_nosync

package fsutil

import "os"

// Datasync does nothing in a build with the mtc_test_nosync tag: a broken
// outbox and MDT log on purpose, which the whole-system power-cut test
// (targets/qemu, TestPowerCut with MTC_POWERCUT_BREAK=nosync) must catch.
// No release build sets the tag.
func Datasync(f *os.File) error { return nil }
