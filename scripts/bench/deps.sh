#!/usr/bin/env bash
# Installs what the side-by-side benchmark needs, only if missing: the build
# dependencies of segfw plus iptables, nftables, iperf3, perf (for the
# profile of profile.sh) and matplotlib for Debian's /usr/bin/python3.
# Root only.
set -euo pipefail
cd "$(dirname "$0")/../.."

exec ./scripts/install-deps.sh iptables nftables iperf3 linux-perf python3 python3-matplotlib
