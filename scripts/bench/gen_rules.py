#!/usr/bin/python3
"""Generates the same N-rule filter for every system of the side-by-side benchmark.

Every ruleset has N rules: N-4 filler rules that the benchmark traffic never
matches (TCP from 10.200.x.y, one source address and one port per rule), then
the 4 rules that the benchmark traffic matches, last:

    client -> server  icmp echo-request   (ping)
    client -> server  udp  9000           (UDP flows)
    client -> server  tcp  7000           (connection rate, crr)
    client -> server  tcp  5201           (iperf3 throughput)

Anything else from the client is dropped (default deny). Files written to OUTDIR:

    segfw-N.toml        segfw policy: N rules over N-2 filler segments + server + client
    iptables-N.rules    iptables-restore: linear INPUT chain, policy DROP
    iptables-ct-N.rules the same, after `-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`
    nft-chain-N.nft     nftables: the N rules as a plain chain, policy drop
    nft-set-N.nft       nftables: the TCP rules as one `ip saddr . tcp dport` set lookup
    nft-vmap-N.nft      nftables: the TCP rules as one `ip saddr . tcp dport` verdict map

Usage: gen_rules.py N OUTDIR [--server 10.98.0.1] [--client 10.98.0.2]
"""
import argparse
import os

TCP_IPERF = 5201
TCP_CRR = 7000
UDP_PORT = 9000
MEASURED = 4  # the last rules, matched by the benchmark traffic
NFT_TABLE = "segfw_bench"


def filler(i):
    """Source address and TCP port of filler rule i (never used by traffic)."""
    return f"10.200.{i >> 8}.{i & 255}", 20000 + i


def segfw_toml(n, server, client):
    fill = n - MEASURED
    out = [
        f"# {n} rules: {fill} filler rules, then the 4 that the benchmark traffic matches.",
        "version = 1",
        "",
        "[defaults]",
        'action = "deny"',
        "failsafe = []",
        "",
        "[segments]",
        f'server = ["{server}/32"]',
        f'client = ["{client}/32"]',
    ]
    out += [f'f{i} = ["{filler(i)[0]}/32"]' for i in range(fill)]
    out.append("")
    for i in range(fill):
        out += [
            "[[rules]]",
            f'name = "filler-{i}"',
            f'from = "f{i}"',
            'to = "server"',
            'proto = "tcp"',
            f"ports = [{filler(i)[1]}]",
            'action = "allow"',
        ]
    for name, proto, port in [
        ("ping", "icmp", None),
        ("udp-flows", "udp", UDP_PORT),
        ("crr", "tcp", TCP_CRR),
        ("iperf3", "tcp", TCP_IPERF),
    ]:
        out += ["[[rules]]", f'name = "{name}"', 'from = "client"', 'to = "server"', f'proto = "{proto}"']
        if port is not None:
            out.append(f"ports = [{port}]")
        out.append('action = "allow"')
    return "\n".join(out) + "\n"


def iptables_rules(n, server, client, conntrack):
    fill = n - MEASURED
    out = [
        "*filter",
        ":INPUT DROP [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
    ]
    if conntrack:
        out.append("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
    for i in range(fill):
        src, port = filler(i)
        out.append(f"-A INPUT -s {src}/32 -d {server}/32 -p tcp -m tcp --dport {port} -j ACCEPT")
    out += [
        f"-A INPUT -s {client}/32 -d {server}/32 -p icmp -m icmp --icmp-type 8 -j ACCEPT",
        f"-A INPUT -s {client}/32 -d {server}/32 -p udp -m udp --dport {UDP_PORT} -j ACCEPT",
        f"-A INPUT -s {client}/32 -d {server}/32 -p tcp -m tcp --dport {TCP_CRR} -j ACCEPT",
        f"-A INPUT -s {client}/32 -d {server}/32 -p tcp -m tcp --dport {TCP_IPERF} -j ACCEPT",
        "COMMIT",
    ]
    return "\n".join(out) + "\n"


def _nft_tail(server, client):
    return [
        f"    ip saddr {client} ip daddr {server} icmp type echo-request accept",
        f"    ip saddr {client} ip daddr {server} udp dport {UDP_PORT} accept",
    ]


def nft_chain(n, server, client):
    fill = n - MEASURED
    out = [
        f"table ip {NFT_TABLE} {{",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
    ]
    for i in range(fill):
        src, port = filler(i)
        out.append(f"    ip saddr {src} ip daddr {server} tcp dport {port} accept")
    out += _nft_tail(server, client)
    out += [
        f"    ip saddr {client} ip daddr {server} tcp dport {TCP_CRR} accept",
        f"    ip saddr {client} ip daddr {server} tcp dport {TCP_IPERF} accept",
        "  }",
        "}",
    ]
    return "\n".join(out) + "\n"


def _tcp_elements(n, client, suffix=""):
    fill = n - MEASURED
    elems = [f"{filler(i)[0]} . {filler(i)[1]}{suffix}" for i in range(fill)]
    elems += [f"{client} . {TCP_CRR}{suffix}", f"{client} . {TCP_IPERF}{suffix}"]
    return ",\n      ".join(elems)


def nft_set(n, server, client):
    return (
        f"table ip {NFT_TABLE} {{\n"
        "  set allowed_tcp {\n"
        "    type ipv4_addr . inet_service\n"
        f"    elements = {{\n      {_tcp_elements(n, client)}\n    }}\n"
        "  }\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy drop;\n"
        f"    ip daddr {server} ip saddr . tcp dport @allowed_tcp accept\n"
        + "\n".join(_nft_tail(server, client))
        + "\n  }\n}\n"
    )


def nft_vmap(n, server, client):
    return (
        f"table ip {NFT_TABLE} {{\n"
        "  map allowed_tcp {\n"
        "    type ipv4_addr . inet_service : verdict\n"
        f"    elements = {{\n      {_tcp_elements(n, client, ' : accept')}\n    }}\n"
        "  }\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy drop;\n"
        f"    ip daddr {server} ip saddr . tcp dport vmap @allowed_tcp\n"
        + "\n".join(_nft_tail(server, client))
        + "\n  }\n}\n"
    )


def generate(n, outdir, server, client):
    """Writes every ruleset for N; returns {kind: path}."""
    if n < MEASURED:
        raise ValueError(f"N must be at least {MEASURED} (the measured rules), got {n}")
    os.makedirs(outdir, exist_ok=True)
    files = {
        "segfw": (f"segfw-{n}.toml", segfw_toml(n, server, client)),
        "iptables": (f"iptables-{n}.rules", iptables_rules(n, server, client, False)),
        "iptables-ct": (f"iptables-ct-{n}.rules", iptables_rules(n, server, client, True)),
        "nft-chain": (f"nft-chain-{n}.nft", nft_chain(n, server, client)),
        "nft-set": (f"nft-set-{n}.nft", nft_set(n, server, client)),
        "nft-vmap": (f"nft-vmap-{n}.nft", nft_vmap(n, server, client)),
    }
    paths = {}
    for kind, (name, text) in files.items():
        path = os.path.join(outdir, name)
        with open(path, "w") as f:
            f.write(text)
        paths[kind] = path
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--server", default="10.98.0.1")
    ap.add_argument("--client", default="10.98.0.2")
    args = ap.parse_args()
    for kind, path in generate(args.n, args.outdir, args.server, args.client).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
