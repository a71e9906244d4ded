#!/usr/bin/env bash
# The lab demo: three namespaces (web, db, outsider) on one bridge; segfw
# guards db with policies/lab.toml, shows what passes and what is dropped and
# by which rule, applies an edited policy live, and tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
SEGFW=$(realpath "${1:-target/release/segfw}")
LAB=segfw-demo
PIN=/sys/fs/bpf/segfw-demo
WORK=$(mktemp -d)

ns() { echo "$LAB-$1"; }
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
# segfw runs under nsenter, not `ip netns exec`: the latter remounts /sys and hides bpffs.
segfw_db() { nsenter --net="/run/netns/$(ns db)" "$SEGFW" --pin-dir "$PIN" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

teardown() {
    nsenter --net="/run/netns/$(ns db)" "$SEGFW" --pin-dir "$PIN" uninstall >/dev/null 2>&1 || true
    for n in web db outsider switch; do ip netns del "$(ns "$n")" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap teardown EXIT

lab_up() {
    ip netns add "$(ns switch)"
    in_ns switch ip link add br0 type bridge
    in_ns switch ip link set br0 up
    local i=2
    for n in web db outsider; do
        ip netns add "$(ns "$n")"
        ip link add "$n" netns "$(ns switch)" type veth peer name eth0 netns "$(ns "$n")"
        in_ns switch ip link set "$n" master br0 up
        in_ns "$n" ip link set lo up
        in_ns "$n" ip link set eth0 up
        in_ns "$n" ip addr add "10.99.0.$i/24" dev eth0
        in_ns "$n" ip addr add "fd99::$i/64" dev eth0 nodad
        i=$((i + 1))
    done
}

# try LABEL NS CMD...: runs a client command in namespace NS, prints PASS or BLOCKED.
try() {
    local label=$1 n=$2; shift 2
    if timeout 3 ip netns exec "$(ns "$n")" "$@" >/dev/null 2>&1; then
        printf '  %-44s \033[32mPASS\033[0m\n' "$label"
    else
        printf '  %-44s \033[31mBLOCKED\033[0m\n' "$label"
    fi
}

traffic() {
    try "web -> db tcp/5432 (nc)" web nc -z -w 2 10.99.0.3 5432
    try "web -> db tcp/8080 (curl)" web curl -s -m 2 -o /dev/null http://10.99.0.3:8080/
    try "web -> db tcp/6379 (nc)" web nc -z -w 2 10.99.0.3 6379
    try "web -> db ping" web ping -c 1 -W 2 10.99.0.3
    try "web -> db ping6" web ping -6 -c 1 -W 2 fd99::3
    try "outsider -> db tcp/5432 (nc)" outsider nc -z -w 2 10.99.0.3 5432
    try "outsider -> db ping" outsider ping -c 1 -W 2 10.99.0.3
}

say "building the lab: namespaces web (10.99.0.2), db (10.99.0.3), outsider (10.99.0.4)"
lab_up
in_ns db nc -l -k -p 5432 >/dev/null 2>&1 &
in_ns db nc -l -k -p 6379 >/dev/null 2>&1 &
(cd "$WORK" && exec ip netns exec "$(ns db)" /usr/bin/python3 -m http.server 8080 >/dev/null 2>&1) &
sleep 1

say "before segfw: everything passes"
traffic

say "segfw attach eth0 --policy policies/lab.toml (in db)"
segfw_db attach eth0 --policy policies/lab.toml
segfw_db status

say "with segfw: only what policies/lab.toml allows passes"
traffic

say "why: the rules that decided (segfw stats) and the tracked flows (segfw conntrack list)"
segfw_db stats
segfw_db conntrack list

say "live edit: the SQL rule moves from 5432 to 15432; segfw policy diff, then apply"
sed 's/5432/15432/' policies/lab.toml >"$WORK/lab-edited.toml"
segfw_db policy diff "$WORK/lab-edited.toml"
segfw_db policy apply "$WORK/lab-edited.toml"
traffic
segfw_db status

say "segfw detach eth0: traffic flows unfiltered again"
segfw_db detach eth0
traffic

say "tearing down"
kill $(jobs -p) 2>/dev/null || true
