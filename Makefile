# HyperSDK — see README.md. `make run` starts the daemon on embedded
# defaults; `make test` runs the whole test suite.

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-deps lint bench fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# Starts hypervisord on its embedded defaults (SQLite in the per-user data
# directory, API on 127.0.0.1:8080) with a simulated vCenter holding demo VMs.
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/hypervisord --demo $(ARGS)

test-deps:
	@./scripts/ensure-test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: test-deps lint
	$(GO) test -race -timeout 15m ./...
	$(MAKE) fuzz

# A short fuzzing run of the parsers that read untrusted input, on top of the
# checked-in corpora (which plain `go test` already replays).
FUZZTIME ?= 15s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) ./ova/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDescriptor$$' -fuzztime $(FUZZTIME) ./ovf/
	$(GO) test -run '^$$' -fuzz '^FuzzCreateBeneath$$' -fuzztime $(FUZZTIME) ./internal/safepath/
	$(GO) test -run '^$$' -fuzz '^FuzzURLGuard$$' -fuzztime $(FUZZTIME) ./internal/netguard/

# Benchmarks print ratios against a baseline measured in the same run
# (x_… metrics). The vSphere export benchmark needs ~9 GiB free in /dev/shm
# (or HYPERSDK_BENCH_DIR).
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchtime 200x ./daemon/api/
	$(GO) test -run '^$$' -bench Delivery -benchtime 1000x ./daemon/webhooks/
	$(GO) test -run '^$$' -bench PooledCall -benchtime 200x ./providers/vsphere/
	$(GO) test -run '^$$' -bench 'ExportVSphere|ListVMs' -benchtime 1x -count 2 -timeout 30m ./providers/vsphere/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./transfer/ ./ova/

clean:
	rm -rf $(BIN)
