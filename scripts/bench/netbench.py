#!/usr/bin/python3
"""Side-by-side benchmark of segfw against no filter, an empty tcx program,
iptables and nftables, through one veth pair between two namespaces.

    client ns  segfw-bench-cli  sbench1 10.98.0.2 ──veth── sbench0 10.98.0.1  segfw-bench-srv  server ns
                                                            (the filter under test)

For every round, for every rule count N, the configurations run in a
shuffled order; each gets a fresh pair of namespaces (so that nothing one
leaves behind, such as an iptables table that stays registered, conntrack
entries or TIME_WAIT sockets, weighs on the next), its filter, and four
measurements: TCP throughput (iperf3), new TCP connections per second (crr),
UDP packets per second over many flows (udp_flows) and ping RTT. Ratios
against "no filter" are taken within a round and N, and their medians over
rounds are reported.

Usage (root):
    netbench.py run --bin-dir target/release --out DIR [--quick] [--rounds R] [--ns 10,1000,10000]
    netbench.py cleanup [--bin-dir target/release]   # removes whatever a run left behind

Writes into DIR: raw.csv (one row per measurement), summary.json (medians),
rules/ (the generated rulesets) and log.txt.
"""
import argparse
import csv
import datetime
import fcntl
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_rules  # noqa: E402

SRV_NS = "segfw-bench-srv"
CLI_NS = "segfw-bench-cli"
SRV_IF = "sbench0"
CLI_IF = "sbench1"
SRV = "10.98.0.1"
CLI = "10.98.0.2"
PIN_DIR = "/sys/fs/bpf/segfw-bench"
EMPTY_PIN_DIR = "/sys/fs/bpf/segfw-bench-empty"
LOCK = "/run/segfw-bench.lock"
IPTABLES = os.environ.get("IPTABLES", "iptables-legacy")
IPTABLES_RESTORE = IPTABLES + "-restore"

CONFIGS = ["none", "empty-tcx", "segfw", "iptables", "iptables-ct", "nft-chain", "nft-set", "nft-vmap"]
CONFIG_LABELS = {
    "none": "no filter",
    "empty-tcx": "empty tcx program",
    "segfw": "segfw",
    "iptables": "iptables (linear)",
    "iptables-ct": "iptables (ESTABLISHED first)",
    "nft-chain": "nftables (chain)",
    "nft-set": "nftables (set)",
    "nft-vmap": "nftables (verdict map)",
}
METRICS = {
    "tcp_gbps": {"label": "TCP throughput", "unit": "Gbit/s", "higher_is_better": True},
    "crr_per_s": {"label": "new TCP connections", "unit": "conn/s", "higher_is_better": True},
    "udp_pps": {"label": "UDP packets received", "unit": "packets/s", "higher_is_better": True},
    "ping_us": {"label": "ping RTT (median)", "unit": "µs", "higher_is_better": False},
}

CLIENT_CPU, SERVER_CPU = "0", "1"
# Throughput varies most on this kind of VM: TCP runs twice as long as the
# rate measurements (and iperf3 drops its first second).
TCP_SECS_PER_SEC = 2


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def log(msg):
    line = f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if LOGFILE:
        LOGFILE.write(line + "\n")
        LOGFILE.flush()


LOGFILE = None
CHILDREN = []  # Popen objects of long-running processes we started


def in_ns(ns, cmd, cpu=None):
    """The command line that runs cmd in namespace ns (nsenter, not
    `ip netns exec`, which remounts /sys and hides /sys/fs/bpf), pinned to a
    CPU when the machine has more than one."""
    pin = ["taskset", "-c", cpu] if cpu is not None and os.cpu_count() > 1 else []
    return ["nsenter", f"--net=/run/netns/{ns}", *pin, *cmd]


def sh(cmd, check=True, timeout=120, stdin=None):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def ns_exists(ns):
    return os.path.exists(f"/run/netns/{ns}")


# --- topology ---------------------------------------------------------------


def topology_up():
    for ns in (SRV_NS, CLI_NS):
        sh(["ip", "netns", "add", ns])
    sh(["ip", "link", "add", SRV_IF, "netns", SRV_NS, "type", "veth", "peer", "name", CLI_IF, "netns", CLI_NS])
    for ns, dev, addr in ((SRV_NS, SRV_IF, SRV), (CLI_NS, CLI_IF, CLI)):
        sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
        sh(["ip", "-n", ns, "link", "set", dev, "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    # The client reuses source ports quickly (crr): give it the whole range.
    sh(in_ns(CLI_NS, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"]))
    # Resolve neighbours once, before any filter exists.
    sh(in_ns(CLI_NS, ["ping", "-c1", "-W2", SRV]))


def kill_ns_processes(ns):
    """Kills the processes left in one of our namespaces (started by us)."""
    if not ns_exists(ns):
        return
    pids = sh(["ip", "netns", "pids", ns], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def stop_children():
    for p in CHILDREN:
        if p.poll() is None:
            p.terminate()
    for p in CHILDREN:
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    CHILDREN.clear()


def remove_filters(bin_dir):
    """Detaches segfw and the empty program (their pins keep tcx links alive
    beyond the namespace)."""
    segfw = os.path.join(bin_dir, "segfw") if bin_dir else None
    if os.path.isdir(PIN_DIR):
        if segfw and os.path.exists(segfw):
            sh([segfw, "--pin-dir", PIN_DIR, "uninstall"], check=False)
        if os.path.isdir(PIN_DIR):
            shutil.rmtree(PIN_DIR, ignore_errors=True)
    if os.path.isdir(EMPTY_PIN_DIR):
        shutil.rmtree(EMPTY_PIN_DIR, ignore_errors=True)


def topology_down(bin_dir):
    stop_children()
    remove_filters(bin_dir)
    for ns in (SRV_NS, CLI_NS):
        kill_ns_processes(ns)
        if ns_exists(ns):
            # iptables rules, nft tables and conntrack entries live in the
            # namespace and go with it.
            sh(["ip", "netns", "del", ns], check=False)


# --- filters ----------------------------------------------------------------


def filter_up(config, rules, bin_dir):
    if config == "none":
        return
    if config == "empty-tcx":
        sh(in_ns(SRV_NS, [os.path.join(bin_dir, "examples", "attach_empty"), "attach", SRV_IF, EMPTY_PIN_DIR]))
    elif config == "segfw":
        seg = os.path.join(bin_dir, "segfw")
        sh(in_ns(SRV_NS, [seg, "--pin-dir", PIN_DIR, "attach", SRV_IF, "--policy", rules["segfw"]]))
    elif config.startswith("iptables"):
        with open(rules[config]) as f:
            sh(in_ns(SRV_NS, [IPTABLES_RESTORE]), stdin=f.read())
    elif config.startswith("nft"):
        sh(in_ns(SRV_NS, ["nft", "-f", rules[config]]))
    else:
        raise ValueError(config)


# --- measurements -----------------------------------------------------------


def start_servers(bin_dir):
    iperf = subprocess.Popen(
        in_ns(SRV_NS, ["iperf3", "-s", "-B", SRV, "-p", str(gen_rules.TCP_IPERF)], SERVER_CPU),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    crr = subprocess.Popen(
        # crr runs one event loop per CPU on each side: not pinned
        in_ns(SRV_NS, [os.path.join(bin_dir, "examples", "crr"), "server", f"{SRV}:{gen_rules.TCP_CRR}"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    CHILDREN.extend([iperf, crr])
    wait_listening([gen_rules.TCP_IPERF, gen_rules.TCP_CRR])


def wait_listening(ports, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sh(in_ns(SRV_NS, ["ss", "-Htln"]), check=False).stdout
        if all(re.search(rf":{p}\b", out) for p in ports):
            return
        time.sleep(0.05)
    raise RuntimeError(f"servers not listening on {ports} after {timeout}s")


def measure_tcp(secs):
    """One iperf3 stream for secs seconds after a 1 s warm-up that is not
    counted (slow start, first touch of the socket buffers)."""
    r = sh(
        in_ns(CLI_NS, ["iperf3", "-c", SRV, "-p", str(gen_rules.TCP_IPERF), "-t", str(secs), "-O", "1", "-J", "--connect-timeout", "3000"], CLIENT_CPU),
        check=False,
        timeout=secs + 31,
    )
    try:
        doc = json.loads(r.stdout)
        return doc["end"]["sum_received"]["bits_per_second"] / 1e9, ""
    except (ValueError, KeyError) as e:
        return float("nan"), f"iperf3: {r.stderr.strip() or e}"


def measure_crr(secs, bin_dir, parallel):
    r = sh(
        in_ns(CLI_NS, [os.path.join(bin_dir, "examples", "crr"), "client", f"{SRV}:{gen_rules.TCP_CRR}", str(secs), str(parallel)]),
        check=False,
        timeout=secs + 30,
    )
    try:
        doc = json.loads(r.stdout)
        note = f"{doc['errors']} failed connections" if doc["errors"] else ""
        return doc["per_sec"], note
    except (ValueError, KeyError) as e:
        return float("nan"), f"crr: {r.stderr.strip() or e}"


def measure_udp(secs, flows, bin_dir):
    udp = os.path.join(bin_dir, "examples", "udp_flows")
    sink = subprocess.Popen(
        in_ns(SRV_NS, [udp, "sink", f"{SRV}:{gen_rules.UDP_PORT}"], SERVER_CPU),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    CHILDREN.append(sink)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = sh(in_ns(SRV_NS, ["ss", "-Huln"]), check=False).stdout
            if re.search(rf":{gen_rules.UDP_PORT}\b", out):
                break
            time.sleep(0.05)
        send = sh(
            in_ns(CLI_NS, [udp, "send", CLI, f"{SRV}:{gen_rules.UDP_PORT}", str(flows), str(secs)], CLIENT_CPU),
            check=False,
            timeout=secs + 30,
        )
        out, err = sink.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        sink.kill()
        out, err = sink.communicate()
    finally:
        CHILDREN.remove(sink)
    try:
        got = json.loads(out)
        sent = json.loads(send.stdout)
        loss = 1 - got["packets"] / sent["sent"] if sent["sent"] else 0
        return got["per_sec"], f"sent {sent['per_sec']:.0f}/s, lost {loss:.1%}"
    except (ValueError, KeyError, UnboundLocalError) as e:
        return float("nan"), f"udp_flows: {err.strip() or e}"


def measure_ping(count):
    r = sh(
        in_ns(CLI_NS, ["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "1", SRV], CLIENT_CPU),
        check=False,
        timeout=count * 0.05 + 30,
    )
    rtts = [float(m) for m in re.findall(r"time=([\d.]+) ms", r.stdout)]
    if not rtts:
        return float("nan"), f"ping: no replies ({r.stderr.strip()})"
    note = f"{count - len(rtts)} lost" if len(rtts) < count else ""
    return statistics.median(rtts) * 1000, note


# --- the run ----------------------------------------------------------------


def check_rules(rules, bin_dir):
    """Validates every generated ruleset before anything is measured."""
    sh([os.path.join(bin_dir, "segfw"), "policy", "check", rules["segfw"]])
    for kind in ("iptables", "iptables-ct"):
        with open(rules[kind]) as f:
            sh(in_ns(SRV_NS, [IPTABLES_RESTORE, "--test"]), stdin=f.read())
    for kind in ("nft-chain", "nft-set", "nft-vmap"):
        sh(in_ns(SRV_NS, ["nft", "-c", "-f", rules[kind]]))


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "cpu": model,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "iptables": version([IPTABLES, "-V"]),
        "nft": version(["nft", "-v"]),
        "iperf3": version(["iperf3", "-v"]),
        "python": platform.python_version(),
    }


def run(args):
    global LOGFILE
    os.makedirs(args.out, exist_ok=True)
    LOGFILE = open(os.path.join(args.out, "log.txt"), "a")
    lock = open(LOCK, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"netbench: another run holds {LOCK}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if args.quick:
        args.rounds = args.rounds or 1
        args.ns = args.ns or "10,1000"
        args.secs = args.secs or 1
        args.ping_count = args.ping_count or 50
    rounds = args.rounds or 4
    ns_list = [int(x) for x in (args.ns or "10,1000,10000").split(",")]
    secs = args.secs or 2
    ping_count = args.ping_count or 100
    configs = [c for c in CONFIGS if not args.configs or c in args.configs.split(",")]
    if "none" not in configs:
        configs.insert(0, "none")
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": bool(args.quick),
        "rounds": rounds,
        "ns": ns_list,
        "secs": secs,
        "tcp_secs": TCP_SECS_PER_SEC * max(1, round(secs)),
        "ping_count": ping_count,
        "udp_flows": args.udp_flows,
        "crr_parallel": args.crr_parallel,
        "seed": seed,
        "configs": configs,
        "machine": machine(),
        "command": " ".join(sys.argv),
    }
    log(f"netbench: rounds={rounds} N={ns_list} secs={secs} ping={ping_count} seed={seed} configs={configs}")

    rows = []
    raw_path = os.path.join(args.out, "raw.csv")
    try:
        topology_down(args.bin_dir)  # leftovers of an earlier, killed run
        topology_up()
        rules = {}
        for n in ns_list:
            rules[n] = gen_rules.generate(n, os.path.join(args.out, "rules"), SRV, CLI)
            check_rules(rules[n], args.bin_dir)
        log("rulesets generated and checked (segfw policy check, iptables-restore --test, nft -c)")
        topology_down(args.bin_dir)

        for rnd in range(rounds):
            for n in ns_list:
                order = configs[:]
                rng.shuffle(order)
                log(f"round {rnd + 1}/{rounds}, N={n}: {' '.join(order)}")
                for config in order:
                    rows += measure_config(rnd, n, config, rules[n], secs, ping_count, args)
                    write_raw(raw_path, rows)
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e}); cleaning up")
        topology_down(args.bin_dir)
        write_raw(raw_path, rows)
        sys.exit(130)
    finally:
        topology_down(args.bin_dir)

    summary = summarize(rows, meta)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    log(f"wrote {raw_path} and summary.json")


def measure_config(rnd, n, config, rules, secs, ping_count, args):
    setup_s = float("nan")
    try:
        topology_up()
        t0 = time.monotonic()
        filter_up(config, rules, args.bin_dir)
        setup_s = time.monotonic() - t0
        start_servers(args.bin_dir)
        results = {
            "tcp_gbps": measure_tcp(TCP_SECS_PER_SEC * max(1, round(secs))),
            "crr_per_s": measure_crr(secs, args.bin_dir, args.crr_parallel),
            "udp_pps": measure_udp(secs, args.udp_flows, args.bin_dir),
            "ping_us": measure_ping(ping_count),
        }
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        # A configuration that cannot be set up is reported, not fatal.
        results = {metric: (float("nan"), f"setup failed: {e}") for metric in METRICS}
    finally:
        topology_down(args.bin_dir)
    rows = []
    summary = []
    for metric, (value, note) in results.items():
        rows.append({"round": rnd, "n": n, "config": config, "metric": metric, "value": value, "setup_s": round(setup_s, 3), "note": note})
        summary.append(f"{metric}={value:.4g}" + (f" ({note})" if note else ""))
    log(f"  {config:12s} setup {setup_s:5.2f}s  " + "  ".join(summary))
    # Let the namespace teardown (a kernel worker) finish before the next one.
    time.sleep(args.settle)
    return rows


def write_raw(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["round", "n", "config", "metric", "value", "setup_s", "note"])
        w.writeheader()
        w.writerows(rows)


def summarize(rows, meta):
    """Medians of absolute values, and medians over rounds of the ratio to
    "no filter" measured in the same round and N."""
    val = {(r["round"], r["n"], r["config"], r["metric"]): r["value"] for r in rows}
    results = {}
    for metric in METRICS:
        results[metric] = {}
        for n in meta["ns"]:
            per_n = {}
            for config in meta["configs"]:
                vals, ratios, setups = [], [], []
                for rnd in range(meta["rounds"]):
                    v = val.get((rnd, n, config, metric))
                    base = val.get((rnd, n, "none", metric))
                    if v is None or v != v:
                        continue
                    vals.append(v)
                    if base and base == base:
                        ratios.append(v / base)
                setups = [r["setup_s"] for r in rows if r["n"] == n and r["config"] == config and r["metric"] == metric]
                per_n[config] = {
                    "median": statistics.median(vals) if vals else None,
                    "ratio": statistics.median(ratios) if ratios else None,
                    "ratio_min": min(ratios) if ratios else None,
                    "ratio_max": max(ratios) if ratios else None,
                    "samples": len(vals),
                    "setup_s": statistics.median(setups) if setups else None,
                }
            results[metric][str(n)] = per_n
    return {"meta": meta, "metrics": METRICS, "labels": CONFIG_LABELS, "results": results}


def cleanup(args):
    lock = open(LOCK, "w")
    deadline = time.monotonic() + 15
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                sys.exit(f"netbench cleanup: a run still holds {LOCK}; not touching its namespaces")
            time.sleep(0.5)
    topology_down(args.bin_dir)
    left = [ns for ns in (SRV_NS, CLI_NS) if ns_exists(ns)] + [d for d in (PIN_DIR, EMPTY_PIN_DIR) if os.path.exists(d)]
    if left:
        sys.exit(f"netbench cleanup: still present: {' '.join(left)}")
    print("netbench cleanup: no namespaces, pins or processes left")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--bin-dir", required=True, help="cargo's release dir (segfw, examples/)")
    r.add_argument("--out", required=True)
    r.add_argument("--quick", action="store_true", help="1 round, N=10,1000, 1 s measurements")
    r.add_argument("--rounds", type=int)
    r.add_argument("--ns", help="rule counts, comma-separated (default 10,1000,10000)")
    r.add_argument("--secs", type=float, help="seconds per throughput/rate measurement (default 2)")
    r.add_argument("--ping-count", type=int, help="pings at 10 ms intervals (default 100)")
    r.add_argument("--udp-flows", type=int, default=1000, help="UDP flows (source ports)")
    r.add_argument("--crr-parallel", type=int, default=16, help="crr connections in flight")
    r.add_argument("--configs", help="subset of: " + ",".join(CONFIGS))
    r.add_argument("--settle", type=float, default=0.5, help="seconds between configurations")
    r.add_argument("--seed", type=int)
    c = sub.add_parser("cleanup")
    c.add_argument("--bin-dir", default="")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("netbench: needs root (namespaces, BPF, iptables)")
    if args.cmd == "run":
        run(args)
    else:
        cleanup(args)


if __name__ == "__main__":
    main()
