#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for FUZZ_SECONDS (default 60) and
# reports executions and crashes. Inputs that crashed are copied to
# tests/fuzz_regressions/<target>/ so `cargo test` replays them.
#
# cargo-fuzz wants a nightly compiler (-Zsanitizer, -Cpasses=sancov);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept those flags.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"policy_check policy_compile event_decode map_decode"}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
	cargo install cargo-fuzz --locked
fi

cd fuzz
cargo fuzz build
total_crashes=0
summary=""
for t in $targets; do
	corpus="corpus/$t"
	mkdir -p "$corpus" "artifacts/$t" "../tests/fuzz_regressions/$t"
	# Seeds: the example policies, and what earlier runs kept.
	if [ "$t" = policy_check ]; then
		cp ../policies/*.toml "$corpus/" 2>/dev/null || true
	fi
	cp ../tests/fuzz_regressions/"$t"/* "$corpus/" 2>/dev/null || true
	before=$(ls "artifacts/$t")
	log="artifacts/$t.log"
	echo "== $t: ${seconds}s"
	# -fork=1 -ignore_*: keep going after a crash, timeout (> 1 s per
	# input) or OOM, so one run finds more than one.
	cargo fuzz run "$t" "$corpus" -- -max_total_time="$seconds" -timeout=1 \
		-rss_limit_mb=2048 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
		>"$log" 2>&1 || true
	# fork mode's status line: "#RUNS: cov: .. oom/timeout/crash: O/T/C time: .."
	last=$(grep -E '^#[0-9]+: ' "$log" | tail -1 || true)
	runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
	otc=$(grep -oE 'oom/timeout/crash: [0-9]+/[0-9]+/[0-9]+' <<<"$last" | cut -d' ' -f2)
	crashes=0
	for f in "artifacts/$t"/*; do
		[ -f "$f" ] || continue
		name=$(basename "$f")
		grep -qxF "$name" <<<"$before" && continue
		cp "$f" "../tests/fuzz_regressions/$t/$name"
		crashes=$((crashes + 1))
	done
	total_crashes=$((total_crashes + crashes))
	summary+=$(printf '%-16s %10s executions, oom/timeout/crash %s, %d new failing inputs (log: fuzz/%s)' \
		"$t" "${runs:-?}" "${otc:-?}" "$crashes" "$log")$'\n'
done
echo
echo "$summary"
if [ "$total_crashes" -gt 0 ]; then
	echo "crashing inputs were copied to tests/fuzz_regressions/; run cargo test --test fuzz_regressions"
	exit 1
fi
