#!/usr/bin/env bash
# Regenerates deepcopy code, CRDs, RBAC, the Grafana dashboard and config/'s
# copy of the alerting rules and fails if anything changed, so that a change
# to the API types, the dashboard generator or the rules without
# `make generate` cannot land.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
generated=(api config/crd/bases config/rbac charts/keeperlb/files/dashboards config/grafana/keeperlb.json config/prometheus-rules)
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
cp -r --parents "${generated[@]}" "$snap"
make -s generate >/dev/null
stale=0
for g in "${generated[@]}"; do
	if ! diff -r "$snap/$g" "$g" >/dev/null; then
		stale=1
	fi
done
if [ "$stale" = 1 ]; then
	echo "generated files were stale (now regenerated): run 'make generate' and commit the result" >&2
	for g in "${generated[@]}"; do
		diff -ru "$snap/$g" "$g" || true
	done
	exit 1
fi
echo "generated files are up to date"
