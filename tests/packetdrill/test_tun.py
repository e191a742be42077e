"""Tests of the tun device (pystack/drivers/net/tun.py) and its no-ARP, no-link-header path
through ip_finish_output2.

(They sit with the packetdrill tests, the device's main user; their mirror place would be
tests/drivers/net/test_tun.py.)
"""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import ICMP, IP, UDP

import pystack
from pystack.drivers.net.tun import IFF_POINTOPOINT, add_tun
from pystack.net.core.dev import IFF_NOARP


@pytest.fixture
async def world():
    net = pystack.Network(seed=3)
    async with net:
        host = net.add_host("h")
        seen: list[bytes] = []
        tun = add_tun(host, "tun0", address="192.168.0.1/16", reader=seen.append)
        host.add_route("192.0.2.0/24", via="192.168.0.1", dev="tun0")
        yield host, tun, seen


async def test_tun_is_a_point_to_point_device_without_arp(world):
    _host, tun, _seen = world
    assert tun.flags & IFF_NOARP and tun.flags & IFF_POINTOPOINT
    assert tun.hard_header_len == 0


async def test_transmitted_packets_are_bare_ip_with_good_checksums(world):
    host, _tun, seen = world
    s = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await s.sendto(b"hello", ("192.0.2.1", 9))
    assert len(seen) == 1
    pkt = IP(seen[0])
    assert (pkt.src, pkt.dst, pkt[UDP].dport, bytes(pkt[UDP].payload)) == (
        "192.168.0.1", "192.0.2.1", 9, b"hello")
    ip_sum, udp_sum = pkt.chksum, pkt[UDP].chksum
    del pkt.chksum, pkt[UDP].chksum
    rebuilt = IP(bytes(pkt))
    assert (rebuilt.chksum, rebuilt[UDP].chksum) == (ip_sum, udp_sum)
    assert host.neighbours() == []  # no ARP on a tun device


async def test_written_packets_are_received_at_once(world):
    host, tun, seen = world
    s = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await s.bind(("0.0.0.0", 8080))
    tun.tun_get_user(bytes(IP(src="192.0.2.1", dst="192.168.0.1") /
                           UDP(sport=4000, dport=8080) / b"abc"))
    data, addr = await s.recvfrom(100)
    assert (data, addr) == (b"abc", ("192.0.2.1", 4000))
    tun.tun_get_user(bytes(IP(src="192.0.2.1", dst="192.168.0.1") / ICMP(id=5, seq=1)))
    assert ICMP in IP(seen[-1]) and IP(seen[-1])[ICMP].type == 0  # the echo reply, sent inline


async def test_a_down_device_drops_what_is_written(world):
    _host, tun, _seen = world
    tun.flags &= ~1  # IFF_UP
    tun.tun_get_user(bytes(IP(src="192.0.2.1", dst="192.168.0.1") / ICMP()))
    assert tun.stats.rx_dropped == 1
