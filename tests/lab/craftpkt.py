#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""craftpkt: send hand-made IPv4/TCP segments from a raw socket, as an outside packet source for the
lab tests (so that watch and connect are tested against packets no rawpunch code made).

  craftpkt.py DST --sport P --dport P [--src A] [--flags S|SA|R|RA|A] [--seq N] [--ack N] [--ttl N]
              [--count N] [--interval S]
  craftpkt.py DST --sport P --dport-range LO-HI --spray N [--src A] [--flags ...]
              a blind spray: N segments as fast as the socket takes them, destination ports cycling
              over LO-HI, every sequence and acknowledgment number random

Without --src the kernel fills in the source address (as for any raw IP socket); with --src the
packet is spoofed from that address. No TCP options. Needs CAP_NET_RAW."""
import argparse
import random
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def segment(src: str, dst: str, a) -> bytes:
    flags = 0
    for ch in a.flags:
        flags |= FLAGS[ch]
    tcp = struct.pack("!HHIIBBHHH", a.sport, a.dport, a.seq & 0xFFFFFFFF, a.ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randrange(65536), 0x4000, a.ttl, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dst")
    p.add_argument("--src")
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--dport", type=int)
    p.add_argument("--dport-range")
    p.add_argument("--spray", type=int, default=0)
    p.add_argument("--flags", default="S")
    p.add_argument("--seq", type=int, default=None)
    p.add_argument("--ack", type=int, default=0)
    p.add_argument("--ttl", type=int, default=64)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.05)
    a = p.parse_args()
    lo = hi = a.dport
    if a.dport_range:
        lo, hi = (int(x) for x in a.dport_range.split("-"))
        a.dport = lo
    if any(ch not in FLAGS for ch in a.flags) or not (0 < a.sport < 65536 and lo and 0 < lo <= hi < 65536):
        p.error("bad flags or port")
    if a.seq is None:
        a.seq = random.getrandbits(32)
    src = a.src
    if src is None:   # the route's source towards dst
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect((a.dst, 9))
        src = u.getsockname()[0]
        u.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    if a.spray:
        n = hi - lo + 1
        for i in range(a.spray):
            a.dport = lo + i % n
            a.seq = random.getrandbits(32)
            a.ack = random.getrandbits(32)
            s.sendto(segment(src, a.dst, a), (a.dst, 0))
        return 0
    pkt = segment(src, a.dst, a)
    for i in range(a.count):
        s.sendto(pkt, (a.dst, 0))
        if i + 1 < a.count:
            time.sleep(a.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
