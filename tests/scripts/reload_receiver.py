"""Receives numbered datagrams on ADDR:PX and ADDR:PY until STOP exists and
1 s passed without a datagram; then writes "x_unique x_total y_total" to
OUT (OUT.ready appears once both sockets are bound).

    reload_receiver.py ADDR PX PY STOP OUT
"""
import os, select, socket, sys, time
addr, px, py, stop, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
socks = {}
for p in (px, py):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    s.bind((addr, p))
    s.setblocking(False)
    socks[s] = p
seen, total = {px: set(), py: set()}, {px: 0, py: 0}
open(out + ".ready", "w").close()
last = time.monotonic()
while True:
    ready, _, _ = select.select(list(socks), [], [], 0.1)
    for s in ready:
        while True:
            try:
                d = s.recv(64)
            except BlockingIOError:
                break
            seen[socks[s]].add(int(d))
            total[socks[s]] += 1
            last = time.monotonic()
    if os.path.exists(stop) and time.monotonic() - last > 1.0:
        break
with open(out + ".tmp", "w") as f:
    f.write("%d %d %d" % (len(seen[px]), total[px], total[py]))
os.rename(out + ".tmp", out)
