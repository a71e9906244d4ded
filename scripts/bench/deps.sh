#!/usr/bin/env bash
# Installs what the side-by-side benchmark needs, only if missing: the build
# dependencies of segfw (scripts/install-deps.sh), plus iptables, nftables,
# iperf3 and matplotlib for Debian's /usr/bin/python3. Root only.
set -euo pipefail
cd "$(dirname "$0")/../.."

./scripts/install-deps.sh

PACKAGES=(iptables nftables iperf3 iputils-ping iproute2 util-linux python3 python3-matplotlib)
missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench/deps.sh: missing ${missing[*]}; run as root" >&2
        exit 1
    fi
    echo "bench/deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "bench/deps.sh: all benchmark dependencies present"
