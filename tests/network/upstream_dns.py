#!/usr/bin/env python3
"""A tiny upstream resolver for the network tests, on a loopback address the
test chose: answers A for outside.test (192.0.2.7), NXDOMAIN for anything
else, and appends every name it was asked to LOG. Usage: ADDR PORT LOG"""
import socket
import struct
import sys

addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(1500)
    if len(data) < 12:
        continue
    i, labels = 12, []
    while i < len(data) and data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode(errors="replace"))
        i += 1 + data[i]
    qend = i + 5
    name = ".".join(labels).lower()
    qtype = struct.unpack("!H", data[i + 1:i + 3])[0] if qend <= len(data) else 0
    with open(log, "a") as f:
        f.write(name + "\n")
    known = name == "outside.test"
    flags = 0x8180 | (0 if known else 3)
    an = 1 if known and qtype == 1 else 0
    out = data[:2] + struct.pack("!HHHHH", flags, 1, an, 0, 0) + data[12:qend]
    if an:
        out += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton("192.0.2.7")
    s.sendto(out, peer)
