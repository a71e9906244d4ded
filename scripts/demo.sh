#!/usr/bin/env bash
# The lab demo: three namespaces (web, db, outsider) on one bridge; segfw
# guards db with policies/lab.toml, shows what passes and what is dropped and
# by which rule, applies an edited policy live, and tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
SEGFW=$(realpath "${1:-target/release/segfw}")
PIN=/sys/fs/bpf/segfw-demo
WORK=$(mktemp -d)

ns() { echo "segfw-$1"; }  # as scripts/lab.sh names them
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
# segfw runs under nsenter, not `ip netns exec`: the latter remounts /sys and hides bpffs.
segfw_db() { nsenter --net="/run/netns/$(ns db)" "$SEGFW" --pin-dir "$PIN" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

teardown() {
    segfw_db uninstall >/dev/null 2>&1 || true
    kill $(jobs -p) 2>/dev/null || true
    scripts/lab.sh down >/dev/null
    rm -rf "$WORK"
}
trap teardown EXIT

# try EXPECT LABEL NS CMD...: runs a client command in namespace NS and prints
# PASS or BLOCKED; a result other than EXPECT is counted, and fails the demo.
SURPRISES=0
try() {
    local expect=$1 label=$2 n=$3 got=BLOCKED; shift 3
    if timeout 3 ip netns exec "$(ns "$n")" "$@" >/dev/null 2>&1; then got=PASS; fi
    local color=31; [ "$got" = PASS ] && color=32
    if [ "$got" = "$expect" ]; then
        printf '  %-44s \033[%sm%s\033[0m\n' "$label" "$color" "$got"
    else
        printf '  %-44s \033[%sm%s\033[0m  (expected %s)\n' "$label" "$color" "$got" "$expect"
        SURPRISES=$((SURPRISES + 1))
    fi
}

# traffic SQL HTTP REDIS PING PING6 OUTSIDER_SQL OUTSIDER_PING: the expected results.
traffic() {
    try "$1" "web -> db tcp/5432 (nc)" web nc -z -w 2 10.99.0.3 5432
    try "$2" "web -> db tcp/8080 (curl)" web curl -s -m 2 -o /dev/null http://10.99.0.3:8080/
    try "$3" "web -> db tcp/6379 (nc)" web nc -z -w 2 10.99.0.3 6379
    try "$4" "web -> db ping" web ping -c 1 -W 2 10.99.0.3
    try "$5" "web -> db ping6" web ping -6 -c 1 -W 2 fd99::3
    try "$6" "outsider -> db tcp/5432 (nc)" outsider nc -z -w 2 10.99.0.3 5432
    try "$7" "outsider -> db ping" outsider ping -c 1 -W 2 10.99.0.3
}
ALL_PASS=(PASS PASS PASS PASS PASS PASS PASS)

say "building the lab (scripts/lab.sh): web (10.99.0.2), db (10.99.0.3), outsider (10.99.0.4)"
scripts/lab.sh up >/dev/null
in_ns db nc -l -k -p 5432 >/dev/null 2>&1 &
in_ns db nc -l -k -p 6379 >/dev/null 2>&1 &
(cd "$WORK" && exec ip netns exec "$(ns db)" /usr/bin/python3 -m http.server 8080 >/dev/null 2>&1) &
sleep 1

say "before segfw: everything passes"
traffic "${ALL_PASS[@]}"

say "segfw attach eth0 --policy policies/lab.toml (in db)"
segfw_db attach eth0 --policy policies/lab.toml
segfw_db status

say "with segfw: only what policies/lab.toml allows passes"
traffic PASS PASS BLOCKED PASS PASS BLOCKED BLOCKED

say "why: the rules that decided (segfw stats) and the tracked flows (segfw conntrack list)"
segfw_db stats
segfw_db conntrack list

say "live edit: the SQL rule moves from 5432 to 15432; segfw policy diff, then apply"
sed 's/5432/15432/' policies/lab.toml >"$WORK/lab-edited.toml"
segfw_db policy diff "$WORK/lab-edited.toml"
segfw_db policy apply "$WORK/lab-edited.toml"
traffic BLOCKED PASS BLOCKED PASS PASS BLOCKED BLOCKED
segfw_db status

say "segfw detach eth0: traffic flows unfiltered again"
segfw_db detach eth0
traffic "${ALL_PASS[@]}"

say "tearing down"
if [ "$SURPRISES" -ne 0 ]; then
    echo "demo: $SURPRISES result(s) differ from what policies/lab.toml should give" >&2
    exit 1
fi
echo "demo: every result was as the policy says"
