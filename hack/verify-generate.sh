#!/usr/bin/env bash
# Regenerates deepcopy code, CRDs, RBAC and config/'s copy of the alerting
# rules and fails if anything changed, so
# that a change to the API types or the rules without `make generate` cannot
# land.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
generated=(api config/crd/bases config/rbac config/prometheus-rules)
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
cp -r --parents "${generated[@]}" "$snap"
make -s generate >/dev/null
stale=0
for d in "${generated[@]}"; do
	diff -r "$snap/$d" "$d" >/dev/null || stale=1
done
if ((stale)); then
	echo "generated files were stale (now regenerated): run 'make generate' and commit the result" >&2
	for d in "${generated[@]}"; do
		diff -ru "$snap/$d" "$d" || true
	done
	exit 1
fi
echo "generated files are up to date"
