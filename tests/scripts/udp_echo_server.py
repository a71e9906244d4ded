"""UDP echo server: answers every datagram with itself, until killed.

    udp_echo_server.py ADDR PORT
"""
import socket
import sys

addr, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((addr, port))
while True:
    d, peer = s.recvfrom(2048)
    s.sendto(d, peer)
