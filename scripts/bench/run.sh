#!/usr/bin/env bash
# `make bench`: every benchmark in one command, then BENCHMARKS.md and its
# charts regenerated from this run's output. Root only; never part of `make test`.
#
#   QUICK=1    1 round, N = 10 and 1,000, 1 s measurements (to check that it works)
#   ROUNDS=R   rounds of the side-by-side benchmark (default 4)
#   NS=a,b,c   rule counts (default 10,1000,10000)
#   SECS=S     seconds per throughput/rate measurement (default 2)
#   IPTABLES=iptables-nft   iptables backend (default iptables-legacy)
#
# Interrupting (Ctrl-C, SIGTERM) stops the run and removes its namespaces,
# pins and processes; `scripts/bench/netbench.py cleanup` does the same by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (namespaces, BPF, iptables)" >&2; exit 1; }
PY=/usr/bin/python3   # Debian's, with python3-matplotlib (not a pyenv python on PATH)
CARGO=${CARGO:-cargo}
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release"
RESULTS=scripts/bench/results
RUN="$RESULTS/run-$(date +%Y%m%d-%H%M%S)"

child=
cleanup() {
    trap - EXIT INT TERM HUP
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    "$PY" scripts/bench/netbench.py cleanup --bin-dir "$BIN" >/dev/null || true
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM HUP

# Runs a step in the background and waits for it, so that a signal reaches
# the trap at once instead of after the step.
step() {
    "$@" &
    child=$!
    wait "$child"
    child=
}

./scripts/bench/deps.sh
$CARGO build --release --locked --bin segfw \
    --example attach_empty --example crr --example udp_flows --example bench_datapath \
    --example bench_conntrack --example verifier_stats
mkdir -p "$RUN"

echo "== per packet: cargo run --release --example bench_datapath"
step $CARGO run --release --locked --quiet --example bench_datapath > "$RUN/datapath.txt"
cat "$RUN/datapath.txt"

echo "== verifier and load time: cargo run --release --example verifier_stats"
step $CARGO run --release --locked --quiet --example verifier_stats > "$RUN/verifier.txt"
cat "$RUN/verifier.txt"

echo "== conntrack scale: cargo run --release --example bench_conntrack"
step $CARGO run --release --locked --quiet --example bench_conntrack > "$RUN/conntrack.txt"
cat "$RUN/conntrack.txt"

echo "== policy apply time and memory: scripts/bench/apply_bench.py"
step "$PY" scripts/bench/apply_bench.py --bin "$BIN/segfw" --out "$RUN" > /dev/null
cat "$RUN/apply.txt"

echo "== side by side through a veth pair: scripts/bench/netbench.py"
args=(run --bin-dir "$BIN" --out "$RUN")
[ "${QUICK:-0}" = 1 ] && args+=(--quick)
[ -n "${ROUNDS:-}" ] && args+=(--rounds "$ROUNDS")
[ -n "${NS:-}" ] && args+=(--ns "$NS")
[ -n "${SECS:-}" ] && args+=(--secs "$SECS")
step "$PY" scripts/bench/netbench.py "${args[@]}"

echo "== profile: CPU of segfw and nftables under the connection-rate load, of segfw in one TCP stream (largest N)"
N_TOP=$(echo "${NS:-10,1000,10000}" | tr , '\n' | sort -n | tail -1)
step scripts/bench/profile.sh "$BIN" "$RUN/rules" "$N_TOP" > "$RUN/profile.txt"
cat "$RUN/profile.txt"

echo "== report"
cp "$RUN/summary.json" "$RUN/datapath.txt" "$RUN/verifier.txt" "$RUN/conntrack.txt" "$RUN/apply.txt" \
    "$RUN/profile.txt" "$RESULTS/"
"$PY" scripts/bench/report.py --summary "$RESULTS/summary.json" --datapath "$RESULTS/datapath.txt" \
    --verifier "$RESULTS/verifier.txt" --conntrack "$RESULTS/conntrack.txt" --apply "$RESULTS/apply.txt" --profile "$RESULTS/profile.txt" --charts-dir "$RESULTS" --out BENCHMARKS.md
echo "bench: raw data in $RUN; BENCHMARKS.md updated"
