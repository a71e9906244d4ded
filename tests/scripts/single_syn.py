"""Exactly one TCP SYN to ADDR:PORT: connect gives up after 0.3 s, before
the kernel's first retransmission (1 s).

    single_syn.py ADDR PORT
"""
import socket
import sys

addr, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(0.3)
s.connect_ex((addr, port))
