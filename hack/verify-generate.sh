#!/usr/bin/env bash
# Regenerates deepcopy code, CRDs and RBAC and fails if anything changed, so
# that a change to the API types without `make generate` cannot land.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
generated=(api config/crd/bases config/rbac)
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
cp -r --parents "${generated[@]}" "$snap"
make -s generate >/dev/null
if ! diff -r "$snap/api" api >/dev/null || ! diff -r "$snap/config/crd/bases" config/crd/bases >/dev/null || ! diff -r "$snap/config/rbac" config/rbac >/dev/null; then
	echo "generated files were stale (now regenerated): run 'make generate' and commit the result" >&2
	diff -ru "$snap/api" api || true
	diff -ru "$snap/config/crd/bases" config/crd/bases || true
	diff -ru "$snap/config/rbac" config/rbac || true
	exit 1
fi
echo "generated files are up to date"
