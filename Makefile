# HyperSDK — see README.md. `make run` starts the daemon on embedded
# defaults; `make test` runs the whole test suite.

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-deps lint bench fuzz clean image dashboard test-dashboard

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

# The race detector slows byte-heavy end-to-end tests five- to tenfold. The
# packages whose concurrency is their own (job engine, transfer, pipeline,
# block engine, API, stores, webhooks, the platform fakes, vSphere) run under
# it; the end-to-end suites of the binaries and of the cloud and Proxmox
# providers (that same code driven through fake platforms and processes) run
# without it, so the whole suite fits CI's budget on two cores. The AWS fake
# joins them: its VM Export tests write whole 1 GiB volumes to S3, and under
# the race detector's shadow memory that process reached 16 GiB and was
# killed by the OOM killer on a 24 GiB machine.
NORACE := ^github.com/hypersdk/hypersdk/(cmd/.*|providers/(aws|azure|gcp|proxmox|hyperv)|providers/aws/awsfake)$$

test: test-deps lint
	$(GO) test -race -timeout 15m $$($(GO) list ./... | grep -v -E '$(NORACE)')
	$(GO) test -timeout 15m $$($(GO) list ./... | grep -E '$(NORACE)')
	$(MAKE) fuzz
	$(MAKE) test-dashboard

# A short fuzzing run of the parsers that read untrusted input, on top of the
# checked-in corpora (which plain `go test` already replays).
FUZZTIME ?= 15s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) ./ova/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDescriptor$$' -fuzztime $(FUZZTIME) ./ovf/
	$(GO) test -run '^$$' -fuzz '^FuzzCreateBeneath$$' -fuzztime $(FUZZTIME) ./internal/safepath/
	$(GO) test -run '^$$' -fuzz '^FuzzURLGuard$$' -fuzztime $(FUZZTIME) ./internal/netguard/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./disk/qcow2/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./disk/vhd/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./disk/vhdx/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./vmdk/
	$(GO) test -run '^$$' -fuzz '^FuzzStreamReader$$' -fuzztime $(FUZZTIME) ./vmdk/
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./vma/
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./internal/lzop/
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(FUZZTIME) ./providers/azure/azblobfake/

# Benchmarks print ratios against anchors measured in the same run. The
# vSphere export is timed against the real govc 0.56.0 (built, and cached, by
# ../shared/tools/build-govc.sh) and curl, disk conversion against qemu-img,
# the AWS EBS direct export against itself one block at a time; it needs ~4 GiB free in /dev/shm
# (or HYPERSDK_BENCH_DIR; exports go to HYPERSDK_BENCH_OUT, default the same).
GOVC_BUILD ?= ../shared/tools/build-govc.sh
bench: test-deps
	@test -x "$(GOVC_BUILD)" || { echo "make bench: $(GOVC_BUILD) not found; it builds govc 0.56.0, the export speed anchor (set GOVC_BUILD to its path)"; exit 1; }
	@govc=$$("$(GOVC_BUILD)" | tail -n 1) && test -x "$$govc" || { echo "make bench: $(GOVC_BUILD) did not produce a govc binary"; exit 1; }; \
	HYPERSDK_GOVC=$$govc $(GO) test -run '^$$' -bench 'ExportVsGovc' -benchtime 1x -timeout 60m ./providers/vsphere/
	$(GO) test -run '^$$' -bench . -benchtime 200x ./daemon/api/
	$(GO) test -run '^$$' -bench Delivery -benchtime 1000x ./daemon/webhooks/
	$(GO) test -run '^$$' -bench PooledCall -benchtime 200x ./providers/vsphere/
	$(GO) test -run '^$$' -bench ListVMs -benchtime 1x ./providers/vsphere/
	$(GO) test -run '^$$' -bench ConvertVsQemuImg -benchtime 1x -timeout 30m ./disk/formats/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./transfer/ ./ova/
	$(GO) test -run '^$$' -bench BlockSourceParallel -benchtime 1x ./pipeline/
	$(GO) test -run '^$$' -bench ExtractVsDecompress -benchtime 1x -timeout 30m ./vma/
	$(GO) test -run '^$$' -bench SFTPvsScp -benchtime 1x -timeout 30m ./transfer/sftp/
	$(GO) test -run '^$$' -bench SMBvsSmbclient -benchtime 1x -timeout 30m ./transfer/smb/
	$(GO) test -run '^$$' -bench EBSDirectParallel -benchtime 1x -timeout 30m ./providers/aws/
	$(GO) test -run '^$$' -bench DownloadVsCurl -benchtime 1x -timeout 20m ./providers/azure/
	$(GO) test -run '^$$' -bench ClusterScaling -benchtime 1x -timeout 60m ./cmd/hypervisord/

# The container image (Dockerfile; README, "Deployment"). Needs Docker with
# BuildKit (or `docker buildx build` / `podman build`).
IMAGE ?= hypersdk/hypervisord
image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

# The web dashboard (web/dashboard): its built bundle, dist/, is committed and
# embedded into hypervisord. `make dashboard` rebuilds it from source; npm
# installs exactly the lock file.
DASHBOARD := web/dashboard
dashboard:
	cd $(DASHBOARD) && npm ci --no-audit --no-fund && npm run gen:api && npm run build

# Vitest unit tests, the Playwright end-to-end tests (Debian's Chromium
# against a real hypervisord --demo), and a check that rebuilding from source
# gives exactly the committed dist/.
test-dashboard: test-deps
	cd $(DASHBOARD) && npm ci --no-audit --no-fund
	cd $(DASHBOARD) && npm run gen:api
	@if ! git diff --quiet -- $(DASHBOARD)/src/api/schema.d.ts; then \
		echo "test-dashboard: src/api/schema.d.ts is not what apitypes/openapi.json generates:"; \
		git diff --stat -- $(DASHBOARD)/src/api/schema.d.ts; \
		echo "run 'make dashboard' and commit web/dashboard/src/api/schema.d.ts and dist/"; exit 1; fi
	cd $(DASHBOARD) && npm test
	cd $(DASHBOARD) && npm run build
	@if ! git diff --quiet -- $(DASHBOARD)/dist || [ -n "$$(git ls-files --others --exclude-standard -- $(DASHBOARD)/dist)" ]; then \
		echo "test-dashboard: rebuilding web/dashboard from source does not give the committed dist/:"; \
		git status --short -- $(DASHBOARD)/dist; \
		echo "run 'make dashboard' and commit web/dashboard/dist with the source change"; exit 1; fi
	cd $(DASHBOARD) && npm run test:e2e

clean:
	rm -rf $(BIN)
