#!/usr/bin/env bash
# Runs govulncheck offline: the vulnerability database is built from the
# golang.org/x/vulndb module (the public database host cannot be reached
# here) with that module's own indexer, cached under .cache/vulndb/<version>,
# and hack/vulngate fails the run when the code reaches a vulnerability that
# a newer version fixes. Bump the versions below to refresh the database.
set -euo pipefail
# The project's Go (see the Makefile): the machine's own Go ignores the
# toolchain go.mod asks for, so name it here for runs outside make too.
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
vulndb=v0.0.0-20261105234957-e22db6528018
govulncheck=v1.9.0
db="${KEEPERLB_CACHE:-$PWD/.cache}/vulndb/$vulndb"
if [[ ! -f "$db/index/db.json" ]]; then
	go mod download golang.org/x/vulndb@"$vulndb"
	src="$(go env GOMODCACHE)/golang.org/x/vulndb@$vulndb/data/osv"
	rm -rf "$db.tmp"
	go run golang.org/x/vulndb/cmd/indexdb@"$vulndb" -vulns "$src" -out "$db.tmp"
	rm -rf "$db"
	mv "$db.tmp" "$db"
fi
go run golang.org/x/vuln/cmd/govulncheck@"$govulncheck" -db "file://$db" -format json ./... | go run ./hack/vulngate
