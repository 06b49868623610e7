#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy and caches the
# binaries (not the multi-gigabyte build cache) under .cache/k8s-tools/<key>,
# where <key> hashes this module's go.mod, go.sum, the Go version and the
# recipe number below. A cache
# hit costs nothing. Prints the directory holding the binaries on stdout.
set -euo pipefail
# The project's Go (see the Makefile): the machine's own Go ignores the
# toolchain go.mod asks for, so name it here for runs outside make too.
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
k8s_version=v1.37.2

# The key leaves this script out so that editing it does not cost a
# 12-minute rebuild; bump recipe when the build flags change.
recipe=1
key=$( { cat "$here/go.mod" "$here/go.sum"; go version; echo "recipe=$recipe"; } | sha256sum | cut -c1-16)
out="${KEEPERLB_CACHE:-$root/.cache}/k8s-tools/$key"

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out.tmp"
cd "$here"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=37"
echo "k8s-tools: building kube-apiserver and etcd $k8s_version (about 12 minutes on 2 cores, once)" >&2
go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$out.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -mod=readonly -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
