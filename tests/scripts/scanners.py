#!/usr/bin/python3
"""Crafted packets for tests/netns_scanners.rs, sent with scapy from the
client namespace onto its veth end. Debian's python3-scapy: run with
/usr/bin/python3.

    scanners.py IFACE SRC_MAC DST_MAC SCENARIO ARGS...

Each scenario only sends; the test reads what reached the server's stack
from that namespace's kernel counters (/proc/net/snmp, /proc/net/snmp6).
"""
import sys
import time

from scapy.all import (
    ICMP,
    IP,
    UDP,
    Ether,
    ICMPv6EchoRequest,
    ICMPv6MLQuery,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6Unknown,
    IPv6,
    IPv6ExtHdrFragment,
    Raw,
    TCP,
    conf,
    fragment,
    fragment6,
    sendp,
)

conf.verb = 0


def send(frames):
    sendp(frames, iface=IFACE, verbose=False)
    time.sleep(0.05)


def l2(dst_mac=None):
    return Ether(src=SRC_MAC, dst=dst_mac or DST_MAC)


def icmp_types(family, src, dst):
    """An echo request with id 0, then other ICMP types between the pair."""
    if family == "v4":
        send(l2() / IP(src=src, dst=dst) / ICMP(type=8, id=0, seq=1))
        for ty in (13, 15, 17, 42, 200):
            send(l2() / IP(src=src, dst=dst) / ICMP(type=ty, id=0, seq=1))
    else:
        send(l2() / IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=0, seq=1))
        for ty in (139, 141, 200):
            send(l2() / IPv6(src=src, dst=dst) / ICMPv6Unknown(type=ty, code=0, msgbody=b"\0" * 4))
        send(l2() / IPv6(src=src, dst=dst, hlim=1) / ICMPv6MLQuery())


def mobility_header(src, dst, port):
    """Protocol 135 (Mobility Header) with a TCP SYN to an open port behind it."""
    mh = bytes([6, 0, 0, 0, 0, 0, 0, 0])  # next header TCP, length 0 (8 bytes)
    tcp = bytes(TCP(sport=40000, dport=port, flags="S"))
    send(l2() / IPv6(src=src, dst=dst, nh=135) / Raw(mh + tcp))


def datagram(family, src, dst, dport, ident):
    """A UDP datagram of 1200 bytes cut into fragments of about 600."""
    payload = b"segfw" * 240
    if family == "v4":
        return fragment(IP(src=src, dst=dst, id=ident) / UDP(sport=40000, dport=dport) / payload, 600)
    pkt = IPv6(src=src, dst=dst) / IPv6ExtHdrFragment(id=ident) / UDP(sport=40000, dport=dport) / payload
    return fragment6(pkt, 600)


def spoofed_first(family, real_first, dport):
    """real_first with the same key and its UDP destination port changed
    (the fragments carry the UDP header as raw bytes)."""
    spoofed = real_first.copy()
    load = bytearray(spoofed[Raw].load)
    load[2:4] = dport.to_bytes(2, "big")
    spoofed[Raw].load = bytes(load)
    if family == "v4":
        del spoofed[IP].chksum
    return spoofed


def frag_spoof(family, src, dst, port, denied_port, ident):
    """The real first fragment, a spoofed first fragment with the same id
    to a denied port, then the rest of the real datagram."""
    frags = datagram(family, src, dst, port, ident)
    send(l2() / frags[0])
    send(l2() / spoofed_first(family, frags[0], denied_port))
    for f in frags[1:]:
        send(l2() / f)


def frag_part(family, src, dst, port, ident, part):
    """Only the first fragment, or only the rest, of a datagram."""
    frags = datagram(family, src, dst, port, ident)
    chosen = frags[:1] if part == "first" else frags[1:]
    for f in chosen:
        send(l2() / f)


def frag_last_first(family, src, dst, port, ident):
    """A datagram's fragments in reverse order."""
    for f in reversed(datagram(family, src, dst, port, ident)):
        send(l2() / f)


def router_advert(src, hops):
    """A router advertisement to all nodes, offering a default route."""
    ra = IPv6(src=src, dst="ff02::1", hlim=int(hops)) / ICMPv6ND_RA(routerlifetime=1800)
    send(l2("33:33:00:00:00:01") / ra / ICMPv6NDOptSrcLLAddr(lladdr=SRC_MAC))


def redirect(src, dst, hops):
    """A redirect: 'reach 2001:db8::1 through src'."""
    rd = IPv6(src=src, dst=dst, hlim=int(hops)) / ICMPv6ND_Redirect(tgt=src, dst="2001:db8::1")
    send(l2() / rd)


SCENARIOS = {
    "icmp-types": icmp_types,
    "mobility-header": lambda src, dst, port: mobility_header(src, dst, int(port)),
    "frag-spoof": lambda fam, src, dst, port, denied, ident: frag_spoof(
        fam, src, dst, int(port), int(denied), int(ident)
    ),
    "frag-part": lambda fam, src, dst, port, ident, part: frag_part(
        fam, src, dst, int(port), int(ident), part
    ),
    "frag-last-first": lambda fam, src, dst, port, ident: frag_last_first(
        fam, src, dst, int(port), int(ident)
    ),
    "router-advert": router_advert,
    "redirect": redirect,
}

if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[4] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} IFACE SRC_MAC DST_MAC {{{'|'.join(SCENARIOS)}}} ARGS...")
    IFACE, SRC_MAC, DST_MAC = sys.argv[1:4]
    SCENARIOS[sys.argv[4]](*sys.argv[5:])
