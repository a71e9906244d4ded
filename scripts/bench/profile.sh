#!/usr/bin/env bash
# What the filters cost under load, as the CPU they take: the rate ratios of
# netbench cannot resolve costs of 1-3% on this kind of machine; these can.
#  1. The connection-rate load (parallel crr, SECS seconds) against segfw, the
#     nftables set ruleset of the same N, and that ruleset behind
#     `ct state established,related accept` (stateful, as segfw is), each on a
#     fresh veth pair.
#     - segfw: the kernel's own accounting of its programs
#       (kernel.bpf_stats_enabled): runs and ns per run, per direction.
#     - all three: a system-wide perf profile (cpu-clock, call graphs) of the
#       middle of the load, giving the CPU share inside each filter's entry
#       points, callees included (segfw's two programs; nf_hook_slow for
#       nftables, conntrack's hooks included), and from it the filter's CPU
#       time per connection.
#  2. One TCP stream (iperf3, SECS seconds after a 1 s warm-up) through
#     segfw: the share of a CPU its programs take. The stream is bound by one
#     CPU, so that share bounds what segfw can take from its throughput.
# Run by `make bench`; root only. Without perf, only the segfw accounting is
# reported.
#
#   profile.sh BIN_DIR RULES_DIR N [SECS] [PARALLEL]
#     RULES_DIR holds netbench's segfw-N.toml and nft-set-N.nft
set -euo pipefail
BIN=$1 RULES=$2 N=$3 SECS=${4:-5} PARALLEL=${5:-16}
PIN=/sys/fs/bpf/segfw-bench-profile SRV=segfw-prof-srv CLI=segfw-prof-cli
WORK=$(mktemp -d)
server=
teardown() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    server=
    sysctl -qw kernel.bpf_stats_enabled=0 || true
    "$BIN/segfw" --pin-dir "$PIN" uninstall >/dev/null 2>&1 || true
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
}
trap 'teardown; rm -rf "$WORK"' EXIT
ns() { local n=$1; shift; nsenter --net="/run/netns/$n" "$@"; }

# A fresh namespace pair.
setup() {
    teardown
    ip netns add "$SRV"
    ip netns add "$CLI"
    ip link add sprof0 netns "$SRV" type veth peer name sprof1 netns "$CLI"
    ip -n "$SRV" addr add 10.98.0.1/24 dev sprof0
    ip -n "$CLI" addr add 10.98.0.2/24 dev sprof1
    for n in "$SRV" "$CLI"; do ip -n "$n" link set lo up; done
    ip -n "$SRV" link set sprof0 up
    ip -n "$CLI" link set sprof1 up
    ns "$CLI" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
    ns "$CLI" ping -c1 -W2 10.98.0.1 >/dev/null
}
attach_segfw() {
    ns "$SRV" "$BIN/segfw" --pin-dir "$PIN" attach sprof0 --policy "$RULES/segfw-$N.toml" >/dev/null
}
# A server (nsenter execs, so $server is the server itself and the kill
# reaches it).
start_server() {
    nsenter --net="/run/netns/$SRV" "$@" >/dev/null 2>&1 &
    server=$!
    sleep 0.5
}
segfw_accounting() {
    bpftool -j prog show pinned "$PIN/progs/ingress" > "$WORK/$1.ingress.json"
    bpftool -j prog show pinned "$PIN/progs/egress" > "$WORK/$1.egress.json"
}

# Runs the crr load; with perf, profiles its middle SECS-2 seconds into
# $WORK/NAME.perf and writes the entry points' shares to $WORK/NAME.shares.
crr_load() {
    local name=$1 window=$((SECS > 3 ? SECS - 2 : 1)) profiler=
    start_server "$BIN/examples/crr" server 10.98.0.1:7000 # a loop per CPU: not pinned
    if command -v perf >/dev/null; then
        (sleep 1; perf record -q -a -g -F 999 -o "$WORK/$name.perf" -- sleep "$window" >/dev/null 2>&1) &
        profiler=$!
    fi
    ns "$CLI" "$BIN/examples/crr" client 10.98.0.1:7000 "$SECS" "$PARALLEL" > "$WORK/$name.load"
    [ -z "$profiler" ] || wait "$profiler" || true # no profile: reported as such
    if [ -f "$WORK/$name.perf" ]; then
        echo "$window" > "$WORK/$name.window"
        perf report -i "$WORK/$name.perf" --children --sort sym -g none --stdio 2>/dev/null \
            > "$WORK/$name.shares" || true
    fi
}

# The nftables set ruleset with established and related flows accepted first.
stateful_nft() {
    sed 's/^\(\s*type filter hook input priority filter; policy drop;\)$/\1\n    ct state established,related accept/' \
        "$RULES/nft-set-$N.nft" > "$WORK/nft-set-ct.nft"
    grep -q 'ct state established' "$WORK/nft-set-ct.nft"
}

setup
attach_segfw
sysctl -qw kernel.bpf_stats_enabled=1
crr_load segfw
sysctl -qw kernel.bpf_stats_enabled=0
segfw_accounting crr

setup
ns "$SRV" nft -f "$RULES/nft-set-$N.nft"
crr_load nft-set

setup
stateful_nft
ns "$SRV" nft -f "$WORK/nft-set-ct.nft"
crr_load nft-set-ct

setup
attach_segfw
start_server taskset -c 1 iperf3 -s -B 10.98.0.1 -p 5201
sysctl -qw kernel.bpf_stats_enabled=1
start_ns=$(date +%s%N)
ns "$CLI" taskset -c 0 iperf3 -c 10.98.0.1 -p 5201 -t "$SECS" -O 1 -J > "$WORK/tcp.json"
echo $(( $(date +%s%N) - start_ns )) > "$WORK/tcp.elapsed_ns"
sysctl -qw kernel.bpf_stats_enabled=0
segfw_accounting tcp
teardown

/usr/bin/python3 - "$WORK" "$N" <<'PY'
import json, os, re, sys
work, n = sys.argv[1], sys.argv[2]
cpus = os.cpu_count()

def read(name):
    path = os.path.join(work, name)
    return open(path).read() if os.path.exists(path) else None

def children_pct(shares, pattern):
    """Sum of the 'children' column (self + callees) of the matching symbols."""
    total = 0.0
    for line in shares.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+\[k\]\s+(\S+)", line)
        if m and re.fullmatch(pattern, m.group(2)):
            total += float(m.group(1))
    return total

def accounting(phase):
    """(name, runs, run_time_ns) of segfw's two programs in one phase."""
    out = []
    for name in ("ingress", "egress"):
        p = json.loads(read(f"{phase}.{name}.json"))
        out.append((name, p.get("run_cnt", 0), p.get("run_time_ns", 0)))
    return out

seg = json.loads(read("segfw.load"))
print("### Connection rate")
print()
print(f"{int(n):,} rules; {seg['parallel']} connections in flight, {seg['secs']:.0f} s per filter.")
print()
print("segfw, kernel accounting (`kernel.bpf_stats_enabled`, which adds two clock reads per run):")
print()
print("| program | runs | runs per connection | ns per run |")
print("|---|--:|--:|--:|")
total = 0
for name, runs, ns in accounting("crr"):
    total += ns
    print(f"| segfw {name} | {runs:,} | {runs / seg['conns']:.1f} | {ns / max(runs, 1):.0f} |")
print()
print(f"segfw BPF time per connection: {total / seg['conns'] / 1000:.1f} µs "
      f"({total / 1e9 / seg['secs'] / cpus:.1%} of the {cpus} CPUs) at {seg['per_sec']:,.0f} connections/s")
print()

rows = []
for label, name, pattern, entry in (
    ("segfw", "segfw", r"bpf_prog_\w+_segfw_(ingress|egress)", "its two tcx programs"),
    ("nftables (set)", "nft-set", r"nf_hook_slow", "nf_hook_slow"),
    ("nftables (set, `ct state established,related accept` first)", "nft-set-ct", r"nf_hook_slow", "nf_hook_slow"),
):
    shares, window, load = read(f"{name}.shares"), read(f"{name}.window"), read(f"{name}.load")
    if not shares or not window or not load:
        continue
    load = json.loads(load)
    pct = children_pct(shares, pattern)
    conns = load["per_sec"] * float(window)
    us = pct / 100 * cpus * float(window) / conns * 1e6
    rows.append((label, entry, load["per_sec"], pct, us))
if rows:
    print("All three, system-wide perf profile (cpu-clock, call graphs) of the middle of the load:")
    print()
    print("| filter | entry point (callees included) | connections/s | share of the CPUs | filter CPU per connection |")
    print("|---|---|--:|--:|--:|")
    for label, entry, rate, pct, us in rows:
        print(f"| {label} | {entry} | {rate:,.0f} | {pct:.2f}% | {us:.1f} µs |")
    if len(rows) == 3 and rows[1][4] > 0 and rows[2][4] > 0:
        print()
        print(f"segfw / nftables set, filter CPU per connection: {rows[0][4] / rows[1][4]:.2f}x")
        print(f"segfw / nftables set with ct state, filter CPU per connection: {rows[0][4] / rows[2][4]:.2f}x")
else:
    print("No perf profile (perf missing or failed): no comparison with nftables.")
print()

tcp = json.loads(read("tcp.json"))
elapsed = int(read("tcp.elapsed_ns"))
gbps = tcp["end"]["sum_received"]["bits_per_second"] / 1e9
print("### One TCP stream")
print()
print(f"iperf3 through segfw ({int(n):,} rules), client on CPU 0 and server on CPU 1, "
      f"{elapsed / 1e9:.1f} s in all: {gbps:.1f} Gbit/s.")
print()
print("| program | runs | ns per run | share of one CPU |")
print("|---|--:|--:|--:|")
share = 0.0
for name, runs, ns in accounting("tcp"):
    share += ns / elapsed
    print(f"| segfw {name} | {runs:,} | {ns / max(runs, 1):.0f} | {ns / elapsed:.2%} |")
print()
print(f"segfw during one TCP stream: {share:.2%} of one CPU")
PY
