#!/usr/bin/env python3
"""A DNS client for the network tests: SERVER NAME TYPE [tcp]. Prints
"rcode=N" and one line per answer ("A 10.89.0.2", "PTR b.dns.podman",
"AAAA ..."); exit 1 when no answer came within 2 s."""
import socket
import struct
import sys

server, name, qtype = sys.argv[1], sys.argv[2], sys.argv[3].upper()
tcp = len(sys.argv) > 4 and sys.argv[4] == "tcp"
types = {"A": 1, "PTR": 12, "AAAA": 28, "MX": 15}
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for label in name.rstrip(".").split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\0" + struct.pack("!HH", types[qtype], 1)
try:
    if tcp:
        s = socket.create_connection((server, 53), timeout=2)
        s.sendall(struct.pack("!H", len(q)) + q)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        r = data[2:]
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(q, (server, 53))
        r, _ = s.recvfrom(4096)
except OSError as e:
    print("error", e)
    sys.exit(1)


def read_name(buf, i):
    labels, jumped, end = [], False, i
    while buf[i]:
        if buf[i] & 0xC0 == 0xC0:
            if not jumped:
                end = i + 2
            i, jumped = struct.unpack("!H", buf[i:i + 2])[0] & 0x3FFF, True
            continue
        labels.append(buf[i + 1:i + 1 + buf[i]].decode())
        i += 1 + buf[i]
    return ".".join(labels), (end if jumped else i + 1)


ident, flags, qd, an = struct.unpack("!HHHH", r[:8])
print("rcode=%d" % (flags & 0xF))
i = 12
for _ in range(qd):
    _, i = read_name(r, i)
    i += 4
for _ in range(an):
    _, i = read_name(r, i)
    t, _, _, rdlen = struct.unpack("!HHIH", r[i:i + 10])
    i += 10
    rd = r[i:i + rdlen]
    if t == 1:
        print("A", socket.inet_ntoa(rd))
    elif t == 12:
        print("PTR", read_name(r, i)[0])
    else:
        print("type%d" % t)
    i += rdlen
