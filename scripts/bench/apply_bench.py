#!/usr/bin/python3
"""`policy apply` time and memory for 1k, 10k and 100k rules, the way an
operator runs it: the release `segfw` binary against a real pin dir with a
program attached to a veth in a namespace of its own.

For each size, two policies of the same shape but different content (so
every apply changes every entry) are applied alternately ROUNDS times.
Reported per size: `policy check` wall time (read, validate, compile: no
kernel), `policy apply` wall time (the whole command), the part after the
policy is compiled ("swapped in", as segfw reports it: new maps filled,
swapped, counters reset), peak RSS of the command, and the kernel memory of
the live policy trie and of all maps (bpftool / `segfw status`).

Usage (root): apply_bench.py --bin target/release/segfw --out DIR [--rounds R] [--sizes 1000,10000,100000]
Writes DIR/apply.txt (a markdown table) and DIR/apply-policies/.
"""
import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys

NS = "segfw-bench-apply"
PIN_DIR = "/sys/fs/bpf/segfw-bench-apply"
IFACE = "sbapply0"


def generate(rules, segments, seed):
    """Segments seg<i>: an IPv4 /24 each, every other one also an IPv6 /64.
    Rules shaped like real ones: mostly segment -> segment on one TCP or UDP
    port, some port ranges and ICMP, a few to world, "*" or one of 16
    external CIDRs, one in eight a deny. (The shape of benches/bench_compile.rs.)"""
    rng = random.Random(seed)
    out = ['version = 1\n[defaults]\naction = "deny"\n[segments]\n']
    for i in range(segments):
        hi, lo = divmod(i, 256)
        v6 = f', "fd00:{hi:x}:{lo:x}::/64"' if i % 2 == 0 else ""
        out.append(f'seg{i} = ["10.{hi}.{lo}.0/24"{v6}]\n')
    for _ in range(rules):
        src = f'"seg{rng.randrange(segments)}"'
        pick = rng.randrange(50)
        if pick == 0:
            dst = '"world"'
        elif pick == 1:
            dst = '"*"'
        elif pick < 4:
            dst = f'"192.168.{rng.randrange(16)}.0/24"'
        else:
            dst = f'"seg{rng.randrange(segments)}"'
        action = "deny" if rng.randrange(8) == 0 else "allow"
        kind = rng.randrange(10)
        if kind == 0:
            proto, extra = "icmp", 'icmp_types = ["echo-request"]\n'
        elif kind < 3:
            proto, extra = "udp", f"ports = [{1 + rng.randrange(65535)}]\n"
        elif kind == 3:
            lo = 1 + rng.randrange(60000)
            proto, extra = "tcp", f'ports = ["{lo}-{lo + rng.randrange(100)}"]\n'
        else:
            proto, extra = "tcp", f"ports = [{1 + rng.randrange(65535)}]\n"
        out.append(f'[[rules]]\nfrom = {src}\nto = {dst}\nproto = "{proto}"\n{extra}action = "{action}"\n')
    return "".join(out)


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r


def timed(cmd):
    """Runs cmd under /usr/bin/time: (wall s, peak RSS KiB, stdout)."""
    r = sh(["/usr/bin/time", "-f", "TIME %e %M", *cmd])
    wall, rss = re.search(r"TIME ([\d.]+) (\d+)", r.stderr).groups()
    return float(wall), int(rss), r.stdout


def in_ns(cmd):
    # nsenter, not `ip netns exec` (which remounts /sys and hides bpffs pins).
    return ["nsenter", f"--net=/run/netns/{NS}", *cmd]


def setup(segfw, first_policy):
    teardown(segfw)
    sh(["ip", "netns", "add", NS])
    sh(["ip", "-n", NS, "link", "add", IFACE, "type", "veth", "peer", "name", IFACE + "p"])
    sh(["ip", "-n", NS, "link", "set", IFACE, "up"])
    sh(in_ns([segfw, "--pin-dir", PIN_DIR, "attach", IFACE, "--policy", first_policy]))


def teardown(segfw):
    if os.path.isdir(PIN_DIR):
        subprocess.run([segfw, "--pin-dir", PIN_DIR, "uninstall"], capture_output=True)
        shutil.rmtree(PIN_DIR, ignore_errors=True)
    if os.path.exists(f"/run/netns/{NS}"):
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def map_memlock(path):
    info = json.loads(sh(["bpftool", "-j", "map", "show", "pinned", path]).stdout)
    return info.get("bytes_memlock", 0)


def measure(segfw, size, rounds, policy_dir):
    rules, segments = size, max(10, size // 10)
    files = []
    for variant in ("a", "b"):
        path = os.path.join(policy_dir, f"policy-{rules}-{variant}.toml")
        with open(path, "w") as f:
            f.write(generate(rules, segments, seed=f"{rules}{variant}"))
        files.append(path)
    checks, applies, swaps, rss = [], [], [], []
    for i in range(rounds):
        path = files[i % 2]
        wall, _, _ = timed([segfw, "policy", "check", path])
        checks.append(wall)
        wall, peak, out = timed(in_ns([segfw, "--pin-dir", PIN_DIR, "policy", "apply", path]))
        applies.append(wall)
        rss.append(peak)
        swaps.append(float(re.search(r"swapped in (\d+) ms", out).group(1)) / 1000)
    status = json.loads(sh([segfw, "--pin-dir", PIN_DIR, "status", "--json"]).stdout)["maps"]
    return {
        "rules": rules,
        "segments": segments,
        "toml_mib": os.path.getsize(files[0]) / 2**20,
        "trie_entries": status["trie_entries"],
        "check_s": statistics.median(checks),
        "apply_s": statistics.median(applies),
        "apply_min_s": min(applies),
        "apply_max_s": max(applies),
        "swap_s": statistics.median(swaps),
        "rss_mib": max(rss) / 1024,
        "trie_mib": map_memlock(os.path.join(PIN_DIR, "maps", "policy")) / 2**20,
        "maps_mib": status["memlock_bytes"] / 2**20,
    }


def table(rows, rounds):
    out = [
        f"medians of {rounds} applies alternating between two policies of each size (min-max in brackets)",
        "",
        "| rules | segments | TOML MiB | trie entries | `policy check` s | `policy apply` s | of which after compile s | peak RSS MiB | live trie MiB | all maps MiB |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        out.append(
            f"| {r['rules']:,} | {r['segments']:,} | {r['toml_mib']:.1f} | {r['trie_entries']:,} | {r['check_s']:.2f} | "
            f"{r['apply_s']:.2f} ({r['apply_min_s']:.2f}-{r['apply_max_s']:.2f}) | {r['swap_s']:.2f} | "
            f"{r['rss_mib']:.0f} | {r['trie_mib']:.1f} | {r['maps_mib']:.1f} |"
        )
    out.append("")
    out += [f"policy apply of {r['rules']} rules: {r['apply_s']:.2f} s (median), peak RSS {r['rss_mib']:.0f} MiB" for r in rows]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the release segfw binary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sizes", default="1000,10000,100000")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("apply_bench: needs root (namespaces, BPF)")
    policy_dir = os.path.join(args.out, "apply-policies")
    os.makedirs(policy_dir, exist_ok=True)
    small = os.path.join(policy_dir, "small.toml")
    with open(small, "w") as f:
        f.write(generate(10, 10, seed="small"))
    rows = []
    try:
        setup(args.bin, small)
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(args.bin, size, args.rounds, policy_dir))
            print(f"apply_bench: {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        teardown(args.bin)
    text = table(rows, args.rounds)
    with open(os.path.join(args.out, "apply.txt"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
