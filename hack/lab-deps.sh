#!/usr/bin/env bash
# Installs the Debian packages the network-namespace lab needs: ping and
# arping for the client, nft for the kube-proxy stand-in and fault injection,
# FRR for the BGP router, ndisc6 for IPv6 neighbour checks. It does nothing
# when every command is already there, so `make test` can call it each time.
set -euo pipefail

need=()
command -v ping >/dev/null || need+=(iputils-ping)
command -v arping >/dev/null || need+=(iputils-arping)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
[ -x /usr/lib/frr/bgpd ] || need+=(frr)
command -v ndisc6 >/dev/null || need+=(ndisc6)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "lab-deps: missing ${need[*]}; run as root, or install them with apt-get" >&2
	exit 1
fi
echo "lab-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# FRR must not start itself on install: the lab runs its daemons per netns.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
