#!/usr/bin/env bash
# Builds promtool and the Prometheus server from the Go module proxy
# (github.com/prometheus/prometheus, pinned in this module's go.mod, never in
# the product's) and caches the two binaries under
# .cache/prometheus-tools/<key>, where <key> hashes this module's go.mod,
# go.sum, the Go version and the recipe number below. A cache hit costs
# nothing. Prints the directory holding the binaries on stdout.
#
# The server is built without its web UI assets (the default: they are
# embedded only with the builtinassets tag) and, with remove_all_sd, without
# the cloud service discoveries: the tests scrape static targets. The API,
# the rule manager and the TSDB are all there.
set -euo pipefail
# The project's Go (see the Makefile): the machine's own Go ignores the
# toolchain go.mod asks for, so name it here for runs outside make too.
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# The key leaves this script out so that editing it does not cost a
# rebuild; bump recipe when the build flags change.
recipe=1
key=$( { cat "$here/go.mod" "$here/go.sum"; go version; echo "recipe=$recipe"; } | sha256sum | cut -c1-16)
out="${KEEPERLB_CACHE:-$root/.cache}/prometheus-tools/$key"

if [[ -x "$out/promtool" && -x "$out/prometheus" ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out.tmp"
cd "$here"
version=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
vpkg=github.com/prometheus/common/version
ldflags="-s -w -X $vpkg.Version=${version#v} -X $vpkg.Branch=module-proxy -X $vpkg.Revision=$version"
echo "prometheus-tools: building promtool and prometheus $version (about 2.5 minutes on 2 cores, once)" >&2
go build -mod=readonly -trimpath -tags remove_all_sd -ldflags "$ldflags" -o "$out.tmp/promtool" github.com/prometheus/prometheus/cmd/promtool
go build -mod=readonly -trimpath -tags remove_all_sd -ldflags "$ldflags" -o "$out.tmp/prometheus" github.com/prometheus/prometheus/cmd/prometheus
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
