"""Tests of the runner's packet codec (pystack.packetdrill.packet): parse untrusted bytes,
build packets with correct checksums, print them in script syntax."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from pystack.packetdrill.packet import BadPacket, Packet, format_packet, parse
from pystack.uapi.ip import IPPROTO_TCP, IPPROTO_UDP


@pytest.mark.parametrize("raw", [b"", b"\x45" * 10, bytes(IP() / TCP())[:30],
                                 b"\x60" + bytes(39), bytes(IP(ihl=4) / UDP())])
def test_malformed_bytes_are_rejected(raw):
    with pytest.raises(BadPacket):
        parse(raw)


def test_tcp_round_trip_with_options():
    raw = bytes(IP(src="1.2.3.4", dst="5.6.7.8", tos=2) /
                TCP(sport=1, dport=2, flags="SE", seq=7, window=100,
                    options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (5, 0)),
                             ("NOP", None), ("WScale", 7)]))
    pkt = parse(raw)
    assert (pkt.proto, pkt.seq, pkt.window, pkt.tos) == (IPPROTO_TCP, 7, 100, 2)
    assert format_packet(pkt) == ("> [ect0] SE 7:7(0) win 100 "
                                  "<mss 1460,sackOK,TS val 5 ecr 0,nop,wscale 7>")
    assert pkt.emit() == raw


@pytest.mark.parametrize("layer", [UDP(sport=5, dport=6) / b"xyz", ICMP(type=8, id=3)])
def test_emit_fills_in_lengths_and_checksums(layer):
    built = parse(bytes(IP(src="1.2.3.4", dst="5.6.7.8") / layer)).emit()
    pkt = IP(built)
    sums = (pkt.chksum, pkt.payload.chksum)
    del pkt.chksum, pkt.payload.chksum
    rebuilt = IP(bytes(pkt))
    assert (rebuilt.chksum, rebuilt.payload.chksum) == sums


def test_format_udp_and_icmp():
    assert format_packet(Packet(proto=IPPROTO_UDP, payload=bytes(12))) == "> udp (12)"
    quoted = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / UDP() / bytes(10))[:28]
    icmp = parse(bytes(IP() / ICMP(type=3, code=3) / quoted))
    assert format_packet(icmp, "<") == "< icmp unreachable port_unreachable [udp (10)]"
