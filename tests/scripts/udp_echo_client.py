"""Sends b'segfw' to ADDR:PORT up to ATTEMPTS times, 1 s each; exits 0 as
soon as it comes back, 1 if it never does. SRC SPORT, if given, fix the
source (so the flow can be named to `segfw explain`).

    udp_echo_client.py ADDR PORT ATTEMPTS [SRC SPORT]
"""
import socket
import sys

addr, port, attempts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
if len(sys.argv) > 4:
    s.bind((sys.argv[4], int(sys.argv[5])))
s.settimeout(1.0)
for _ in range(attempts):
    s.sendto(b"segfw", (addr, port))
    try:
        sys.exit(0 if s.recvfrom(64)[0] == b"segfw" else 1)
    except OSError:
        pass
sys.exit(1)
