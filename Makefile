# KeeperLB. On a fresh machine:
#   make demo   a 3-node lab: a Service's IP over ARP, then over BGP (ECMP, BFD)
#   make test   every test tier, as CI runs it
SHELL := /bin/bash
# The Go toolchain, for every go command below and every script they run:
# go1.27.3, which the go command fetches from the Go module proxy the first
# time (about 76 MB). A machine's own Go ignores a toolchain named in go.mod
# (its GOTOOLCHAIN is local), and go.mod's `go 1.27.3` makes an older Go
# refuse to build rather than build with the vulnerabilities 1.27.3 fixes.
# Keep this, go.mod, .ci/run, hack/*.sh and the README in step.
GOTOOLCHAIN ?= go1.27.3
export GOTOOLCHAIN
GO ?= go
# gofmt from that toolchain: the one on PATH is the machine's own.
GOFMT = $$($(GO) env GOROOT)/bin/gofmt
CONTROLLER_GEN := $(GO) tool controller-gen
# kube-apiserver and etcd, built once from the Go module proxy and cached.
K8S_TOOLS := bash hack/k8s-tools/build.sh
# promtool and the Prometheus server, built once from the Go module proxy
# (hack/prometheus-tools, a module of its own) and cached.
PROM_TOOLS := bash hack/prometheus-tools/build.sh

.PHONY: rules vuln lab-deps e2e all build generate verify-generate lint test unit integration fuzz demo bench bench-alloc bench-ipam bench-bgp bench-failover clean images

all: build

build: ## Build the binaries into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/ ./cmd/...

# The dashboard generator is its own module (hack/dashboard/go.mod), so that
# the Grafana SDK is no dependency of the product. The chart's copy of the
# JSON is canonical; kustomize cannot read outside config/, hence the second.
generate: ## Regenerate deepcopy code, CRDs and RBAC from the Go types and markers, the Grafana dashboard, and config/'s copy of the alerting rules.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=keeperlb-controller paths=./internal/controller/... output:rbac:artifacts:config=config/rbac/controller
	$(CONTROLLER_GEN) rbac:roleName=keeperlb-speaker paths=./internal/speaker/... output:rbac:artifacts:config=config/rbac/speaker
	cd hack/dashboard && $(GO) run . -out ../../charts/keeperlb/files/dashboards/keeperlb.json -out ../../config/grafana/keeperlb.json
	bash hack/prometheus-rules.sh

verify-generate: ## Fail when generated files are stale.
	bash hack/verify-generate.sh

# staticcheck, pinned, from the Go module proxy: dead code and deprecated
# calls fail the build (about 20 s warm, a minute the first time).
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## gofmt, go vet, staticcheck, and go.mod/go.sum exactly as `go mod tidy` leaves them (the product's and hack/dashboard's).
	@out=$$($(GOFMT) -l $$(git ls-files '*.go')) || exit 1; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@if ! diff=$$($(GO) mod tidy -diff 2>&1); then echo "go.mod/go.sum are not tidy (run go mod tidy):"; echo "$$diff"; exit 1; fi
	cd hack/dashboard && $(GO) vet ./...
	@if ! diff=$$(cd hack/dashboard && $(GO) mod tidy -diff 2>&1); then echo "hack/dashboard/go.mod/go.sum are not tidy (cd hack/dashboard && go mod tidy):"; echo "$$diff"; exit 1; fi

# The second line of test runs the dashboard generator's tests (its own
# module, not in ./...): the JSON parses, every query is valid PromQL over
# documented metrics, and uses only the allowed variables.
# vuln right after lint: about 45 s with its database cached, 1.5 min
# building it, 2.5 min on a machine with nothing cached at all.
test: verify-generate lint vuln rules lab-deps ## Every tier: lint, vulnerabilities, alerting rules, unit, integration on a real control plane, the netns lab, end to end, fuzz.
	KEEPERLB_K8S_BIN=$$($(K8S_TOOLS)) KEEPERLB_PROMETHEUS_BIN=$$($(PROM_TOOLS)) $(GO) test -race -count=1 -skip '^(TestFRR|TestDemo$$)' $$($(GO) list ./... | grep -v /test/e2e)
	cd hack/dashboard && $(GO) test -count=1 ./...
	$(MAKE) e2e
	$(MAKE) fuzz

# The tests against FRR, the demo's and the end-to-end tests run alone,
# after the rest, and without the race detector: they run BFD at 300 ms x 3
# and speaker heartbeats at 100 ms, which a CPU shared with the other
# packages' builds and API servers (or slowed down by -race) starves into
# false failovers.
e2e: lab-deps ## FRR, demo and end-to-end tests on the netns lab (real controller, speakers, FRR).
	KEEPERLB_K8S_BIN=$$($(K8S_TOOLS)) $(GO) test -count=1 -p 1 -run '^(TestFRR|TestDemo$$)' ./internal/bgp/ ./internal/lab/ ./internal/cli/
	KEEPERLB_K8S_BIN=$$($(K8S_TOOLS)) KEEPERLB_PROMETHEUS_BIN=$$($(PROM_TOOLS)) $(GO) test -count=1 -p 1 -timeout 30m ./test/e2e/...

# The first run builds promtool and prometheus: 2 min 20 s on 2 shared cores
# with nothing cached (1.4 GB of modules, 1.2 GB of build cache); cached after.
rules: ## promtool check rules and promtool test rules on the alerting rules (charts/keeperlb/files/prometheus-rules.yaml, test/rules).
	bin=$$($(PROM_TOOLS)) && $$bin/promtool check rules charts/keeperlb/files/prometheus-rules.yaml && cd test/rules && $$bin/promtool test rules alerts.test.yaml

vuln: ## govulncheck offline, against a database built from the golang.org/x/vulndb module; fails on reachable vulnerabilities that have a fix.
	bash hack/vuln.sh

lab-deps: ## Debian packages the network lab needs (ping, arping, nft, FRR); no-op when present.
	bash hack/lab-deps.sh

unit: ## Pure packages only (no control plane).
	$(GO) test -race ./internal/config/... ./internal/ipam/...

# Each fuzz target runs for a number of executions (about 10 s each here)
# rather than a -fuzztime duration. The counts came in when Go 1.26's fuzzing
# coordinator could fail a timed run with a bare "context deadline exceeded"
# as the time ran out (golang/go#75804), which is not a finding. That bug is
# reported fixed in Go 1.27, which the project now builds with; the counts stay
# because they do the same work however busy the CPU is (durations are
# untried on 1.27).
# FUZZSCALE multiplies every count (FUZZSCALE=10 for a longer run).
FUZZSCALE ?= 1
FUZZ_TARGETS := \
	FuzzParse:./internal/config/:20000 \
	FuzzParseAddressEntry:./internal/config/:80000 \
	FuzzParseCommunity:./internal/config/:100000 \
	FuzzAllocator:./internal/ipam/:25000 \
	FuzzFromService:./internal/request/:100000 \
	FuzzARP:./internal/layer2/:150000 \
	FuzzNDP:./internal/layer2/:150000 \
	FuzzDecode:./internal/membership/:300000 \
	FuzzPeerConversion:./internal/webhook/:15000 \
	FuzzImport:./internal/legacyconfig/:25000 \
	FuzzReadMessage:./internal/bgp/:40000

fuzz: ## A short run of every fuzz target; the corpus lives in testdata/fuzz.
	@set -e; for t in $(FUZZ_TARGETS); do \
		IFS=: read -r name pkg n <<<"$$t"; \
		echo "go test -run='^$$' -fuzz='^$$name\$$' -fuzztime=$$((n * $(FUZZSCALE)))x $$pkg"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$$((n * $(FUZZSCALE)))x -fuzzminimizetime=5s $$pkg; \
	done

demo: lab-deps build ## 3-node netns lab: a Service's IP over ARP with failover, then over BGP to FRR with ECMP and BFD failover (DEMO_FLAGS=--keep keeps the lab).
	KEEPERLB_K8S_BIN=$$($(K8S_TOOLS)) ./bin/keeperlb demo --controller-bin ./bin/keeperlb-controller --speaker-bin ./bin/keeperlb-speaker $(DEMO_FLAGS)

bench: bench-ipam bench-alloc bench-bgp bench-failover ## Every benchmark table.

bench-ipam: ## Allocator speed and memory against a first-fit baseline.
	$(GO) run ./bench/ipam

bench-alloc: build ## Controller backlog/steady-state/RSS against the raw API write limit.
	KEEPERLB_K8S_BIN=$$($(K8S_TOOLS)) $(GO) run ./bench/alloc --controller-bin ./bin/keeperlb-controller

bench-bgp: lab-deps build ## BGP: Service -> route in FRR's kernel, withdraw, cut-off with BFD vs hold timers (root; about 9 min).
	KEEPERLB_K8S_BIN=$$($(K8S_TOOLS)) $(GO) run ./bench/bgp --controller-bin ./bin/keeperlb-controller --speaker-bin ./bin/keeperlb-speaker

bench-failover: lab-deps build ## Layer 2 failover (speaker SIGKILL, node cut-off, planned SIGTERM) and speaker footprint on the netns lab (root; about 15 min).
	KEEPERLB_K8S_BIN=$$($(K8S_TOOLS)) $(GO) run ./bench/failover --controller-bin ./bin/keeperlb-controller --speaker-bin ./bin/keeperlb-speaker

clean:
	rm -rf bin

images: ## OCI image-layout tarballs of the controller and speaker in bin/images (no Docker needed; PLATFORMS=linux/amd64,linux/arm64 for more).
	$(GO) run ./hack/images -out bin/images $(if $(PLATFORMS),-platforms $(PLATFORMS))
