#!/usr/bin/env python3
"""gen_seeds.py - writes the fuzz_ustack seed corpus into this folder.

A seed is a sequence of records [op][len:2 BE][bytes] (see tests/fuzz/fuzz_ustack.c;
the high bits of the first op byte choose the port's variant).
The peer is 10.0.0.1 (MAC 02:..:01), announced by an ARP request first so that the
stack can answer it; TCP frames after the SYN use OP_REL (seq/ack relative to what the
stack last sent), so the seeds stay valid whatever the stack's ISN. Checksums are left
zero: OP_FIXED/OP_REL fill them in. Run: python3 gen_seeds.py"""
import os
import struct

OP_RAW, OP_FIXED, OP_REL, OP_CLOCK, OP_DRAIN, OP_USER = range(6)
MAC_C, MAC_S = bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2])
IP_C, IP_S = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def rec(op, b=b''):
    return struct.pack('>BH', op, len(b)) + b


def arp_request():
    arp = struct.pack('>HHBBH', 1, 0x0800, 6, 4, 1) + MAC_C + IP_C + bytes(6) + IP_S
    return rec(OP_RAW, b'\xff' * 6 + MAC_C + b'\x08\x06' + arp)


def arp_reply():
    arp = struct.pack('>HHBBH', 1, 0x0800, 6, 4, 2) + MAC_C + IP_C + MAC_S + IP_S
    return rec(OP_RAW, MAC_S + MAC_C + b'\x08\x06' + arp)


def ipv4(proto, l4):
    hdr = struct.pack('>BBHHHBBH', 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0)
    return MAC_S + MAC_C + b'\x08\x00' + hdr + IP_C + IP_S + l4


def tcp(op, flags, seq=0, ack=0, data=b'', opts=b'', win=0xffff, sport=40000, dport=9092):
    opts += b'\x01' * (-len(opts) % 4)
    hdr = struct.pack('>HHIIBBHHH', sport, dport, seq, ack, (20 + len(opts)) // 4 << 4,
                      flags, win, 0, 0)
    return rec(op, ipv4(6, hdr + opts + data))


SYN_OPTS = bytes([2, 4, 0x05, 0xb4, 4, 2, 3, 3, 7])  # MSS 1460, SACK permitted, wscale 7


def clock(ms):
    return rec(OP_CLOCK, struct.pack('>H', ms))


def handshake():
    return (arp_request() + tcp(OP_FIXED, SYN, seq=1000, opts=SYN_OPTS) + rec(OP_DRAIN) +
            tcp(OP_REL, ACK))


SEEDS = {
    'arp_request': arp_request(),
    'icmp_echo': arp_request() + rec(OP_FIXED, ipv4(1, bytes([8, 0, 0, 0, 0, 1, 0, 1]) +
                                                    b'ping')) + rec(OP_DRAIN),
    'syn': arp_request() + tcp(OP_FIXED, SYN, seq=1000, opts=SYN_OPTS) + rec(OP_DRAIN),
    'rst': handshake() + tcp(OP_REL, RST) + rec(OP_DRAIN),
    'data_echo_fin': handshake() + tcp(OP_REL, PSH | ACK, data=b'hello') + clock(1) +
    rec(OP_DRAIN) + tcp(OP_REL, ACK) + tcp(OP_REL, FIN | ACK) + clock(1) + rec(OP_DRAIN) +
    tcp(OP_REL, ACK) + clock(3000),
    'big_send_sack': handshake() + tcp(OP_REL, PSH | ACK, data=b'\x03\x40') + rec(OP_DRAIN) +
    tcp(OP_REL, ACK, ack=1460 * 2,
        opts=bytes([1, 1, 5, 10]) + struct.pack('>II', 0, 0)) + clock(300) +
    rec(OP_DRAIN) + clock(1000) + rec(OP_DRAIN),
    'zero_window': arp_request() + tcp(OP_FIXED, SYN, seq=1000, win=2048, opts=SYN_OPTS[:4]) +
    rec(OP_DRAIN) + tcp(OP_REL, ACK, win=2048) + tcp(OP_REL, PSH | ACK, data=b'\x03\x10',
                                                     win=2048) + rec(OP_DRAIN) +
    tcp(OP_REL, ACK, win=0) + clock(500) + clock(1000) + rec(OP_DRAIN) + clock(2000),
    'keepalive': handshake() + clock(1000) + rec(OP_DRAIN) + clock(600) + clock(600) +
    clock(600) + rec(OP_DRAIN),
    'pause_close': handshake() + tcp(OP_REL, PSH | ACK, data=b'\x02abc') +
    tcp(OP_REL, PSH | ACK, seq=4, data=b'more') + rec(OP_USER, b'\x00\x00') + clock(1) +
    rec(OP_DRAIN) + tcp(OP_REL, PSH | ACK, data=b'\x01') + clock(1) + rec(OP_DRAIN),
    # the stack as a client: connect to 10.0.0.1:9093 from port 32768, ARP first
    'connect': rec(OP_USER, bytes([0, 4, 1, 0])) + rec(OP_DRAIN) + arp_reply() +
    rec(OP_DRAIN) + tcp(OP_REL, SYN | ACK, seq=5000, opts=SYN_OPTS, sport=9093,
                        dport=32768) + rec(OP_DRAIN) +
    tcp(OP_REL, PSH | ACK, data=b'x', sport=9093, dport=32768) + clock(1) + rec(OP_DRAIN),
    # off-link through the gateway, which never answers ARP
    'connect_gateway': rec(OP_USER, bytes([0, 4, 5, 1])) + clock(1000) + clock(1000) +
    clock(3000) + rec(OP_DRAIN),
}
# the same scripts on other ports (bits 5..7 of the first op byte): offloads; one segment
# per frame and a pool of 48 frames
SEEDS['data_echo_offload'] = bytes([SEEDS['data_echo_fin'][0] | 0x20]) + SEEDS['data_echo_fin'][1:]
SEEDS['big_send_small_pool'] = bytes([0xc0]) + (  # two senders: the pool runs dry
    handshake() + tcp(OP_FIXED, SYN, seq=1000, opts=SYN_OPTS, sport=40001) + rec(OP_DRAIN) +
    tcp(OP_REL, ACK, sport=40001) + tcp(OP_REL, PSH | ACK, data=b'\x03\xb0') +
    tcp(OP_REL, PSH | ACK, data=b'\x03\xb0', sport=40001) + clock(300) + rec(OP_DRAIN) +
    clock(300) + rec(OP_DRAIN) + tcp(OP_REL, ACK) + tcp(OP_REL, ACK, sport=40001) +
    clock(1) + rec(OP_DRAIN))[1:]

if __name__ == '__main__':
    here = os.path.dirname(os.path.abspath(__file__))
    for name, data in SEEDS.items():
        with open(os.path.join(here, name + '.bin'), 'wb') as f:
            f.write(data)
