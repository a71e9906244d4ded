"""Sends numbered datagrams to ADDR:PX and ADDR:PY at RATE per second each
until STOP exists (a new X socket, so a new flow, every 500); then writes
the count sent to OUT.

    reload_sender.py ADDR PX PY RATE STOP OUT
"""
import os, socket, sys, time
addr, px, py, rate, stop, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
sy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sx = None
n, t0 = 0, time.monotonic()
while not os.path.exists(stop):
    if n % 500 == 0:
        if sx:
            sx.close()
        sx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    data = str(n).encode()
    sx.sendto(data, (addr, px))
    sy.sendto(data, (addr, py))
    n += 1
    delay = t0 + n / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
with open(out + ".tmp", "w") as f:
    f.write(str(n))
os.rename(out + ".tmp", out)
