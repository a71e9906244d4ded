#!/usr/bin/env bash
# Lab topology for the demo and manual testing (matches policies/lab.toml):
#
#   segfw-web       10.99.0.2  fd99::2 ─┐
#   segfw-db        10.99.0.3  fd99::3 ─┼─ br0 in namespace segfw-lab
#   segfw-outsider  10.99.0.4  fd99::4 ─┘
#
# Namespaces carry a segfw- prefix so the lab never touches an operator's own.
# Each host namespace has one interface, eth0. Attach segfw on db with:
#   nsenter --net=/run/netns/segfw-db segfw attach eth0 --policy policies/lab.toml
# (nsenter, not `ip netns exec`: that remounts /sys, hiding /sys/fs/bpf.)
#
# Usage: scripts/lab.sh up | down | check
set -euo pipefail

BRIDGE_NS=segfw-lab
HOSTS=(web db outsider)
declare -A HOST_NUM=([web]=2 [db]=3 [outsider]=4)
# The namespace of a lab host.
ns() { echo "segfw-$1"; }

die() { echo "lab.sh: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root (namespaces and veth pairs)"
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

up() {
    need_root
    down quiet
    ip netns add "$BRIDGE_NS"
    ip -n "$BRIDGE_NS" link add br0 type bridge
    ip -n "$BRIDGE_NS" link set br0 up
    ip -n "$BRIDGE_NS" link set lo up
    for host in "${HOSTS[@]}"; do
        local n=${HOST_NUM[$host]}
        local hns
        hns=$(ns "$host")
        ip netns add "$hns"
        # eth0 in the host namespace, its peer (named after the host) on the bridge.
        ip link add eth0 netns "$hns" type veth peer name "$host" netns "$BRIDGE_NS"
        ip -n "$BRIDGE_NS" link set "$host" master br0 up
        ip -n "$hns" addr add "10.99.0.$n/24" dev eth0
        ip -n "$hns" addr add "fd99::$n/64" dev eth0 nodad
        ip -n "$hns" link set eth0 up
        ip -n "$hns" link set lo up
    done
    echo "lab up: web 10.99.0.2/fd99::2, db 10.99.0.3/fd99::3, outsider 10.99.0.4/fd99::4"
    echo "next: nsenter --net=/run/netns/segfw-db segfw attach eth0 --policy policies/lab.toml"
}

down() {
    for name in "${HOSTS[@]/#/segfw-}" "$BRIDGE_NS"; do
        if ns_exists "$name"; then
            need_root
            ip netns del "$name"
        fi
    done
    [ "${1:-}" = quiet ] || echo "lab down"
}

# Connectivity to db as the lab policy sees it; "ok" or "blocked" per probe.
check() {
    need_root
    ns_exists "$(ns db)" || die "lab is not up (run: scripts/lab.sh up)"
    probe() {
        local label=$1; shift
        if "$@" >/dev/null 2>&1; then echo "  ok       $label"; else echo "  blocked  $label"; fi
    }
    for src in web outsider; do
        for v in 4 6; do
            local db=10.99.0.3
            [ "$v" = 6 ] && db=fd99::3
            probe "$src -> db ping (IPv$v)" ip netns exec "$(ns "$src")" ping -c1 -W1 "$db"
            for port in 5432 8080 22; do
                probe "$src -> db tcp/$port (IPv$v)" ip netns exec "$(ns "$src")" nc -z -w1 "$db" "$port"
            done
        done
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    check) check ;;
    *) echo "usage: $0 up | down | check" >&2; exit 2 ;;
esac
