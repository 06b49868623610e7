# KeeperLB. `make demo` runs the local lab; `make test` runs every test tier.
SHELL := /bin/bash
GO ?= go
CONTROLLER_GEN := $(GO) tool controller-gen

.PHONY: generate
generate: ## Regenerate deepcopy code and CRD manifests.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... output:crd:artifacts:config=config/crd/bases
