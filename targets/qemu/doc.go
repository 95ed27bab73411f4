// Package qemu is the whole-system QEMU test of mtcagent (`make
// test-system`): it boots Debian's Linux kernel for a foreign CPU —
// qemu-system-arm -M vexpress-a9 (armhf, armmp kernel) and
// qemu-system-mipsel -M malta (4kc-malta kernel) — with an initramfs whose
// /init (targets/qemu/init) runs the cross-built mtcagent against a modem
// simulator on the host, attached as the guest's second serial port
// (/dev/ttyAMA1, /dev/ttyS1) through a unix socket. No guest networking.
// The host then checks what the guest printed on its console, and verifies
// the binding attestation with the device's public key.
//
// TestPowerCut (docs/power-cut.md) boots the ARM guest again and again with
// an ext4 SD card image made on the host, on which targets/qemu/powercut
// appends to the outbox and the MDT log, SIGKILLs QEMU at random moments,
// and checks after each boot that every append the guest reported durable
// is there, intact, once.
//
// The test runs only with MTC_SYSTEM_TEST=1 (it downloads kernels and takes
// minutes); fetch-kernel.sh keeps the kernels under $MTC_QEMU_CACHE or
// ~/.cache/mtcagent-qemu. The package's only non-test code is a newc cpio
// writer (WriteCPIO) for the initramfs, tested in every run.
package qemu
