// Package deps is the dependency test of the device binary, in the manner of
// tailscale's depaware: for the default build of ./cmd/mtcagent and for each
// feature-dropping build tag, the list of packages it links (go list -deps,
// linux/mipsle, the size-budget target) is committed here as TAG.txt, and
// the test fails when the build drifts from it, so every new dependency is a
// reviewed diff. It also proves what each tag removes and that no test-only
// package (testing, internal/benchtable, targets/...) reaches the binary.
//
// After an intended change: go test ./targets/deps -update, and commit the
// lists. There is no non-test code here.
package deps
