# mtcagent — build, test and demo. Needs only Go; everything else (qemu-user,
# libcoap) is installed by the `deps` target with apt-get when missing.

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
DIST     := dist
FUZZTIME ?= 5s
BENCHCOUNT ?= 3
# Size budget for linux/mipsle (bytes), checked by `make size` in CI. The
# GOAL is 6.0 MiB stripped / 1.6 MiB xz with every device feature; today's
# binary (daemon with CoAP/DTLS uplink) is 8.31 / 2.01 MiB, so the budget is
# set just above it as a guard against growth until the trimming in
# docs/size.md lands. Lower it as the binary shrinks; never raise it silently.
SIZE_BUDGET_STRIPPED ?= 9043968
SIZE_BUDGET_XZ       ?= 2202009

# Cross targets: name GOOS GOARCH extra-env
TARGETS := \
	linux-amd64:GOOS=linux:GOARCH=amd64 \
	linux-armv6:GOOS=linux:GOARCH=arm:GOARM=6 \
	linux-armv7:GOOS=linux:GOARCH=arm:GOARM=7 \
	linux-arm64:GOOS=linux:GOARCH=arm64 \
	linux-mips:GOOS=linux:GOARCH=mips:GOMIPS=softfloat \
	linux-mipsle:GOOS=linux:GOARCH=mipsle:GOMIPS=softfloat

# Emulated test runs: GOARCH extra-env emulator
QEMU_TARGETS := \
	arm:GOARM=7:qemu-arm-static \
	arm64:GOARM=:qemu-aarch64-static \
	mips:GOMIPS=softfloat:qemu-mips-static \
	mipsle:GOMIPS=softfloat:qemu-mipsel-static

.PHONY: all build build-all test vet fmt-check test-native test-qemu fuzz bench cross size demo deps clean

all: build

build:
	$(BUILD) -o $(DIST)/mtcagent ./cmd/mtcagent

## build-all: the device agent and the server-side collector.
build-all: build
	$(BUILD) -o $(DIST)/mtccollector ./cmd/mtccollector

## test: everything CI checks — vet, gofmt, race tests, the suite under
## qemu-user for arm v7, arm64, mips and mipsle, and a short run of each fuzz target.
test: deps vet fmt-check test-native test-qemu fuzz

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi; echo "gofmt: ok"

test-native:
	$(GO) test -race -count=1 ./...

test-qemu: deps
	@set -e; for t in $(QEMU_TARGETS); do \
		arch=$${t%%:*}; rest=$${t#*:}; envv=$${rest%%:*}; emu=$${rest#*:}; \
		echo "== go test under $$emu (GOARCH=$$arch $$envv)"; \
		env CGO_ENABLED=0 GOARCH=$$arch $$envv MTC_TEST_EXEC=$$emu \
			$(GO) test -short -count=1 -exec $$emu ./... ; \
	done

fuzz:
	@bash scripts/fuzz-all.sh $(FUZZTIME)

bench:
	@mkdir -p $(DIST)
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 30m ./... | tee $(DIST)/bench.out
	$(GO) run ./internal/benchtable -goals docs/bench-goals.tsv -o docs/benchmarks.md < $(DIST)/bench.out

cross:
	@set -e; mkdir -p $(DIST); for t in $(TARGETS); do \
		name=$${t%%:*}; envv=$$(echo $${t#*:} | tr ':' ' '); \
		echo "build $$name"; \
		env CGO_ENABLED=0 $$envv $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(DIST)/mtcagent-$$name ./cmd/mtcagent; \
	done

size: cross
	@bash scripts/size.sh $(DIST) $(SIZE_BUDGET_STRIPPED) $(SIZE_BUDGET_XZ)

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
## Debian's kernels (downloaded once into ~/.cache/mtcagent-qemu) and check its output.
test-system:
	@bash targets/qemu/deps.sh
	MTC_SYSTEM_TEST=1 $(GO) test -count=1 -v -run '^TestSystem$$' -timeout 10m ./targets/qemu
