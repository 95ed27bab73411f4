module github.com/mtcagent/mtcagent/scripts/vulncheck-canary

go 1.26.0

require github.com/pion/dtls/v3 v3.1.2

require (
	github.com/pion/logging v0.2.4 // indirect
	github.com/pion/transport/v4 v4.0.1 // indirect
	golang.org/x/crypto v0.45.0 // indirect
)
