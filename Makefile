# mtcagent — build, test and demo. Needs only Go; everything else (qemu-user,
# libcoap, postgresql) is installed by the `deps` target with apt-get when missing.

GO       ?= go
# The Go release is the toolchain line of go.mod (a patched one, fetched once
# through the module proxy when the machine's Go is older). Some machines
# set GOTOOLCHAIN=local (in Go's go.env or the environment), which would
# build with their own, older standard library: auto honours go.mod.
export GOTOOLCHAIN = auto
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
DIST     := dist
FUZZTIME ?= 3s
# Runs a recipe's command and says how long the target took.
TIMED = bash scripts/timed.sh "make: $@"
BENCHCOUNT ?= 3
# Cross targets: name GOOS GOARCH extra-env
TARGETS := \
	linux-amd64:GOOS=linux:GOARCH=amd64 \
	linux-armv6:GOOS=linux:GOARCH=arm:GOARM=6 \
	linux-armv7:GOOS=linux:GOARCH=arm:GOARM=7 \
	linux-arm64:GOOS=linux:GOARCH=arm64

# MIPS routers have little flash (docs/size.md). Each gets two builds:
# linux-mips{,le} with every device feature (no simulator, a test tool), and
# linux-mips{,le}-small without the CoAP/DTLS uplink as well. Both are
# compiled without inlining except in the crypto packages: ~8 % smaller,
# slower only in code the idle agent hardly runs.
MIPS_TARGETS := \
	linux-mips:GOOS=linux:GOARCH=mips:GOMIPS=softfloat \
	linux-mipsle:GOOS=linux:GOARCH=mipsle:GOMIPS=softfloat
MIPS_TAGS    := mtc_omit_sim
SMALL_TAGS   := mtc_omit_sim,mtc_omit_coap
MIPS_GCFLAGS := all=-l crypto/...= golang.org/x/crypto/...=

# Size budgets (bytes), checked by `make size` in CI, target:stripped:xz.
# The goal of issue 7, 6.0 MiB stripped / 1.6 MiB xz, is the budget of the
# small build. The full build cannot meet it (the uplink's go-coap, pion/dtls
# and crypto/tls are 1.8 MiB alone); its budget is a guard set just above
# today's size. Lower budgets as the binary shrinks; never raise one silently.
#
# 2026-12-01: raised for a few hours (the small build had grown to 6.13 MiB
# with issue 12's hardening and issue 13's families), then back to issue 7's
# goal once the device binary stopped linking crypto/x509, RSA, ECDSA and the
# NIST curves (attest reads and writes its Ed25519 keys and COSE signatures
# itself): the small build is 5.44 MiB (docs/size.md). The full build's
# guard then went from 8.0 MiB to one 64 KiB page more, 8,454,144 bytes,
# when the end of the session's work (token format 2, one event per cell
# change, confirm-later delivery, the one clock) took it to 8,388,801.
SIZE_BUDGETS ?= \
	linux-mipsle-small:6291456:1677722 \
	linux-mipsle:8454144:1887437

# Emulated test runs: GOARCH extra-env emulator
QEMU_TARGETS := \
	arm:GOARM=7:qemu-arm-static \
	arm64:GOARM=:qemu-aarch64-static \
	mips:GOMIPS=softfloat:qemu-mips-static \
	mipsle:GOMIPS=softfloat:qemu-mipsel-static

.PHONY: all build build-all test vet fmt-check test-native test-qemu fuzz vulncheck bench cross size demo deps clean

all: build

build:
	$(BUILD) -o $(DIST)/mtcagent ./cmd/mtcagent

## build-all: the device agent and the server-side collector.
build-all: build
	$(BUILD) -o $(DIST)/mtccollector ./cmd/mtccollector

## test: everything CI checks — vet, gofmt, the vulnerability check, race tests,
## the suite under qemu-user for arm v7, arm64, mips and mipsle, and a short run
## of each fuzz target.
test: deps vet fmt-check vulncheck test-native test-qemu fuzz

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi; echo "gofmt: ok"

# The second run builds the packages that have feature tags as the small
# router build does (mtc_omit_coap), and runs the tests that only exist there.
test-native:
	@$(TIMED) $(GO) test -race -count=1 ./...
	@$(TIMED) $(GO) test -count=1 -tags mtc_omit_coap ./agent ./cmd/mtcagent

# Two targets at a time (QEMU_JOBS): emulated tests mostly wait on
# real-time timelines, so side by side they take little longer than one.
test-qemu: deps
	@GO=$(GO) $(TIMED) bash scripts/test-qemu.sh $(QEMU_TARGETS)

fuzz:
	@$(TIMED) bash scripts/fuzz-all.sh $(FUZZTIME)

## vulncheck: govulncheck against a local copy of the Go vulnerability database
## (pinned in scripts/vulncheck.sh, built once into ~/.cache): fails when the
## code reaches a known vulnerability. The self-test first checks that a
## known-vulnerable module is reported. See docs/vulncheck.md.
vulncheck:
	@$(TIMED) bash scripts/vulncheck.sh --selftest

bench:
	@mkdir -p $(DIST)
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 30m ./... | tee $(DIST)/bench.out
	$(GO) run ./internal/benchtable -goals docs/bench-goals.tsv -o docs/benchmarks.md < $(DIST)/bench.out

cross:
	@set -e; mkdir -p $(DIST); \
	build() { \
		name=$$1; envv=$$(echo $$2 | tr ':' ' '); tags=$$3; gcf=""; \
		for g in $$4; do gcf="$$gcf -gcflags=$$g"; done; \
		echo "build $$name$${tags:+ (tags $$tags)}"; \
		env CGO_ENABLED=0 $$envv $(GO) build -trimpath -tags "$$tags" $$gcf -ldflags "$(LDFLAGS)" \
			-o $(DIST)/mtcagent-$$name ./cmd/mtcagent; \
	}; \
	for t in $(TARGETS); do build $${t%%:*} $${t#*:} "" ""; done; \
	for t in $(MIPS_TARGETS); do \
		build $${t%%:*} $${t#*:} "$(MIPS_TAGS)" "$(MIPS_GCFLAGS)"; \
		build $${t%%:*}-small $${t#*:} "$(SMALL_TAGS)" "$(MIPS_GCFLAGS)"; \
	done

size: cross
	@bash scripts/size.sh $(DIST) $(SIZE_BUDGETS)

demo: build-all deps
	@bash scripts/demo.sh $(DIST)/mtcagent $(DIST)/mtccollector

## deps: install what the tests need from Debian when it is missing.
deps:
	@bash scripts/deps.sh

clean:
	rm -rf $(DIST)

# --- targets/ (issue 7): packages, whole-system QEMU test -------------------
.PHONY: deb

## deb: Debian/Raspberry Pi OS packages (amd64, arm64, armhf with GOARM=6) in dist/.
DEB_ARCHES := amd64:linux-amd64 arm64:linux-arm64 armhf:linux-armv6
deb: cross
	@set -e; for a in $(DEB_ARCHES); do \
		bash targets/debian/build-deb.sh $${a%%:*} $(DIST)/mtcagent-$${a#*:} $(VERSION) $(DIST); \
	done

.PHONY: openwrt-test
## openwrt-test: the OpenWrt init/UCI/hotplug tests and the .deb test (also part of test-native).
openwrt-test:
	$(GO) test -count=1 ./targets/openwrt ./targets/debian

.PHONY: test-system
## test-system: boot mtcagent on emulated ARM (vexpress-a9) and MIPS (malta) machines with
## Debian's kernels (downloaded once into ~/.cache/mtcagent-qemu) and check its output; then
## 20 power cuts of the ARM guest writing its outbox and MDT log on an ext4 SD card (docs/power-cut.md).
test-system:
	@bash targets/qemu/deps.sh
	MTC_SYSTEM_TEST=1 $(GO) test -count=1 -v -run '^(TestSystem|TestPowerCut)$$' -timeout 15m ./targets/qemu

.PHONY: soak
## soak: the power-cut test with 200 cycles (about 18 minutes; not in CI).
soak:
	@bash targets/qemu/deps.sh
	MTC_SYSTEM_TEST=1 MTC_POWERCUT_CYCLES=200 $(GO) test -count=1 -v -run '^TestPowerCut$$' -timeout 60m ./targets/qemu
