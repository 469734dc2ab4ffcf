#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus for tools/fuzz/fuzz_decode.c into tests/corpus/decode/.

Each file is one selector byte (index into the harness's link-type table; the top bit asks the
decoder to verify checksums) followed by a frame.
Frames are small real-shaped packets: SYN, SYN-ACK with Linux options, RST, RST-ACK, data,
ICMP time-exceeded (8-byte and full quotes, a quote with a filled Record Route), port-unreachable, IP
options, fragments, on
Ethernet, 802.1Q, QinQ, Linux SLL, SLL2 and raw IPv4. Run: python3 tests/corpus/gen_decode.py
"""
import os
import struct

SEL = {"eth": 0, "sll": 1, "sll2": 2, "raw": 3, "ipv4": 4, "eth+csum": 0x80, "raw+csum": 0x83}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decode")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip(src, dst, proto, payload, ttl=64, ident=0x1234, frag=0x4000, opts=b""):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(opts) + len(payload), ident, frag,
                    ttl, proto, 0, bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    h += opts
    c = csum(h)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def tcp(sp, dp, seq, ack, flags, win=64240, opts=b"", data=b""):
    doff = 5 + len(opts) // 4
    return struct.pack("!HHIIBBHHH", sp, dp, seq, ack, doff << 4, flags, win, 0, 0) + opts + data


LINUX_SYN_OPTS = bytes([2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7])
SYNACK_OPTS = bytes([2, 4, 0x05, 0x78, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 1, 1, 3, 3, 9])


def with_tcp_csum(pkt):
    """The IPv4+TCP packet pkt with its TCP checksum filled (pseudo header included)."""
    ihl = (pkt[0] & 15) * 4
    seg = pkt[ihl:]
    ph = pkt[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    return pkt[:ihl + 16] + struct.pack("!H", csum(ph + seg[:16] + b"\0\0" + seg[18:])) + pkt[ihl + 18:]


def icmp(typ, code, quote):
    h = struct.pack("!BBHI", typ, code, 0, 0) + quote
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def eth(p, vlans=()):
    h = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"
    for tpid, vid in vlans:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", 0x0800) + p


def sll(p):
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", 0x0800) + p


def sll2(p):
    return struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + p


A, B, R = "10.0.1.2", "198.18.2.2", "198.18.1.1"
syn = ip(A, B, 6, tcp(40000, 5000, 0x11111111, 0, 0x02, opts=LINUX_SYN_OPTS))
synack = ip(B, A, 6, tcp(5000, 40000, 0x22222222, 0x11111112, 0x12, 65160, SYNACK_OPTS))
rst = ip(B, A, 6, tcp(5000, 40000, 0, 0x11111112, 0x14, 0), ttl=62)
rst_only = ip(B, A, 6, tcp(5000, 40000, 0x11111112, 0, 0x04, 0))
data = ip(B, A, 6, tcp(5000, 40000, 0x22222223, 0x11111112, 0x18, 502,
                       bytes([1, 1, 8, 10, 0, 0, 0, 10, 0, 0, 0, 2]), b"hello\n"))
syn_ttl2 = ip(A, B, 6, tcp(40000, 5000, 0x11111111, 0, 0x02, opts=LINUX_SYN_OPTS), ttl=1, ident=7)
te8 = ip(R, A, 1, icmp(11, 0, syn_ttl2[:28]), ttl=63)
te_full = ip(R, A, 1, icmp(11, 0, syn_ttl2), ttl=63)
pu = ip(B, A, 1, icmp(3, 3, syn[:48]), ttl=62)
hu = ip(R, A, 1, icmp(3, 13, syn[:28]))
pp = ip(R, A, 1, icmp(12, 0, syn[:28]))
sq = ip(R, A, 1, icmp(4, 0, syn[:28]))
echo = ip(R, A, 1, icmp(0, 0, b"ping"))
ipopt = ip(B, A, 6, tcp(5000, 40000, 1, 2, 0x12, opts=SYNACK_OPTS), opts=bytes([0x94, 4, 0, 0]))
frag1 = ip(B, A, 6, tcp(5000, 40000, 1, 2, 0x18, data=b"x" * 24), frag=0x2000)
frag2 = ip(B, A, 6, b"y" * 16, frag=0x0003)
badopt = ip(B, A, 6, tcp(5000, 40000, 1, 2, 0x12, opts=bytes([2, 3, 5, 0xb4, 1, 1, 1, 1])))
# the probe's Record Route SYN as a carrier's router quotes it (three slots filled), behind an ICMP that
# carries a Record Route of its own
rr_opt = bytes([7, 39, 16]) + b"".join(bytes(map(int, a.split("."))) for a in
                                     ("100.64.1.2", "198.18.1.2", "10.255.1.1")) + b"\0" * 25
syn_rr = ip(A, "198.18.3.2", 6, tcp(40000, 9, 0x12345603, 0, 0x02, opts=LINUX_SYN_OPTS), ttl=1, ident=0x7203,
            opts=rr_opt)
te_rr = ip("10.255.1.1", A, 1, icmp(11, 0, syn_rr), ttl=62, opts=bytes([7, 7, 4, 0, 0, 0, 0, 0]))

seeds = {
    "eth-syn": ("eth", eth(syn)),
    "eth-synack-opts": ("eth", eth(synack)),
    "eth-rst-ack": ("eth", eth(rst) + b"\0" * 6),            # Ethernet padding to 60 bytes
    "eth-rst": ("eth", eth(rst_only)),
    "eth-data": ("eth", eth(data)),
    "eth-icmp-timxceed-8": ("eth", eth(te8)),
    "eth-icmp-timxceed-full": ("eth", eth(te_full)),
    "eth-icmp-port-unreach": ("eth", eth(pu)),
    "eth-icmp-host-prohib": ("eth", eth(hu)),
    "eth-icmp-paramprob": ("eth", eth(pp)),
    "eth-icmp-squench": ("eth", eth(sq)),
    "eth-icmp-echo": ("eth", eth(echo)),
    "eth-ipopts-synack": ("eth", eth(ipopt)),
    "eth-frag-first": ("eth", eth(frag1)),
    "eth-frag-second": ("eth", eth(frag2)),
    "eth-badopt": ("eth", eth(badopt)),
    "vlan-synack": ("eth", eth(synack, [(0x8100, 42)])),
    "qinq-synack": ("eth", eth(synack, [(0x88a8, 7), (0x8100, 42)])),
    "sll-synack": ("sll", sll(synack)),
    "sll-icmp-timxceed": ("sll", sll(te8)),
    "sll2-synack": ("sll2", sll2(synack)),
    "sll2-rst": ("sll2", sll2(rst)),
    "sll2-icmp-port-unreach": ("sll2", sll2(pu)),
    "raw-synack": ("raw", synack),
    "ipv4-icmp-timxceed": ("ipv4", te_full),
    # checksums verified (RP_DECODE_CSUM): good, TCP checksum left 0 (bad), a first fragment (partial)
    "csum-eth-data": ("eth+csum", eth(with_tcp_csum(data))),
    "csum-eth-rst-ack": ("eth+csum", eth(with_tcp_csum(rst)) + b"\0" * 6),
    "csum-eth-synack-bad": ("eth+csum", eth(synack)),
    "csum-raw-frag-first": ("raw+csum", with_tcp_csum(frag1)),
    "eth-icmp-timxceed-rr": ("eth", eth(te_rr)),
}

os.makedirs(OUT, exist_ok=True)
for name, (lt, frame) in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([SEL[lt]]) + frame)
print("%d seeds in %s" % (len(seeds), OUT))
