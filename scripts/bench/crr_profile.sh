#!/usr/bin/env bash
# Where segfw's time goes under the connection-rate load: segfw attached to
# one veth of a fresh namespace pair with the N-rule policy of netbench, the
# parallel crr load for SECS seconds, and the kernel's own accounting of the
# programs (kernel.bpf_stats_enabled): runs and ns per run, per direction,
# and BPF time per connection. Run by `make bench`; root only.
#
#   crr_profile.sh BIN_DIR POLICY.toml [SECS] [PARALLEL]
set -euo pipefail
BIN=$1 POLICY=$2 SECS=${3:-5} PARALLEL=${4:-16}
PIN=/sys/fs/bpf/segfw-bench-profile SRV=segfw-prof-srv CLI=segfw-prof-cli
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    sysctl -qw kernel.bpf_stats_enabled=0 || true
    "$BIN/segfw" --pin-dir "$PIN" uninstall >/dev/null 2>&1 || true
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ns() { local n=$1; shift; nsenter --net="/run/netns/$n" "$@"; }

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
ns "$SRV" "$BIN/segfw" --pin-dir "$PIN" attach sprof0 --policy "$POLICY" >/dev/null
ns "$SRV" taskset -c 1 "$BIN/examples/crr" server 10.98.0.1:7000 "$PARALLEL" &
server=$!
sleep 0.5

sysctl -qw kernel.bpf_stats_enabled=1
load=$(ns "$CLI" taskset -c 0 "$BIN/examples/crr" client 10.98.0.1:7000 "$SECS" "$PARALLEL")
sysctl -qw kernel.bpf_stats_enabled=0

stats() { bpftool -j prog show pinned "$PIN/progs/$1"; }
/usr/bin/python3 - "$load" "$(stats ingress)" "$(stats egress)" <<'PY'
import json, os, sys
load, progs = json.loads(sys.argv[1]), [json.loads(a) for a in sys.argv[2:]]
conns = load["conns"]
print(f"{conns:,} connections in {load['secs']:.1f} s ({load['per_sec']:,.0f}/s, {load['parallel']} clients)")
print()
print("| program | runs | runs per connection | ns per run |")
print("|---|--:|--:|--:|")
total = 0
for name, p in zip(("ingress", "egress"), progs):
    runs, ns = p.get("run_cnt", 0), p.get("run_time_ns", 0)
    total += ns
    print(f"| segfw {name} | {runs:,} | {runs / conns:.1f} | {ns / max(runs, 1):.0f} |")
print()
cpus = os.cpu_count()
print(f"segfw BPF time per connection: {total / conns / 1000:.1f} µs "
      f"({total / 1e9 / load['secs'] / cpus:.1%} of the {cpus} CPUs; kernel.bpf_stats_enabled adds two clock reads per run)")
PY
