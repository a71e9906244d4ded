#!/usr/bin/env bash
# Installs what building and testing segfw needs, on Debian/Ubuntu, only if
# something is missing (so `make test` stays fast on a prepared machine).
# Extra package names given as arguments are installed the same way
# (scripts/bench/deps.sh adds the benchmark's).
set -euo pipefail

PACKAGES=(clang llvm libelf-dev zlib1g-dev pkg-config iproute2 iputils-ping
          netcat-openbsd iperf3 python3-scapy bpftool curl util-linux "$@")

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing ${missing[*]}; run as root: sudo make deps" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found; install a Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi

# The tests and segfw itself pin under /sys/fs/bpf.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
    mount -t bpf bpf /sys/fs/bpf
fi
echo "install-deps: all dependencies present"
