"""Checksum offload: TCP leaves its checksum CHECKSUM_PARTIAL (only the pseudo-header's sum
in place), a device with NETIF_F_HW_CSUM (lo) carries it so, and whatever shows the bytes (a
capture, a device without offload, fragmentation) completes it first (skb_checksum_help).

Read first: pystack/net/core/skbuff.py (CHECKSUM_PARTIAL, skb_checksum_help),
pystack/net/core/dev.py (validate_xmit, the taps).
"""

from __future__ import annotations

import socket

import trio
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

import pystack
from pystack.lib.checksum import csum_ipv4_payload
from pystack.net.core.skbuff import (CHECKSUM_NONE, CHECKSUM_PARTIAL, alloc_skb,
                                     skb_checksum_help)
from pystack.net.ipv4 import tcp_ipv4

from nethelpers import connected_pair, lan, python_only, recv_until_eof

counts_calls = python_only("counts calls by patching kernel functions")


def scapy_checksums_agree(pkt) -> bool:
    """Whether scapy, rebuilding the IP and TCP checksums, gets the captured ones."""
    ip = pkt[IP]
    fresh = IP(bytes(ip))
    del fresh.chksum
    del fresh[TCP].chksum
    rebuilt = IP(bytes(fresh))
    return (rebuilt.chksum, rebuilt[TCP].chksum) == (ip.chksum, ip[TCP].chksum)


def test_skb_checksum_help_completes_the_pseudo_header_sum() -> None:
    saddr, daddr = 0x0A000001, 0x0A000002
    for length in (20, 21, 1480, 65535 - 20):
        skb = alloc_skb(length)
        off = skb.put(length)
        skb.buf[off:off + length] = bytes((i * 7 + 3) & 0xFF for i in range(length))
        skb.buf[off + 16] = skb.buf[off + 17] = 0
        want = csum_ipv4_payload(saddr, daddr, 6, skb.buf, off, length)
        pseudo = (saddr + daddr + length + 6) % 0xFFFF
        skb.buf[off + 16], skb.buf[off + 17] = pseudo >> 8, pseudo & 0xFF
        skb.ip_summed, skb.csum_start, skb.csum_offset = CHECKSUM_PARTIAL, off, 16
        skb_checksum_help(skb)
        assert skb.ip_summed == CHECKSUM_NONE
        assert (skb.buf[off + 16] << 8 | skb.buf[off + 17]) == want
        assert csum_ipv4_payload(saddr, daddr, 6, skb.buf, off, length) == 0  # verifies


async def _transfer(client, server, addr: str, size: int) -> bytes:
    """Stream `size` bytes from `client` to `server` (at `addr`:80); check them."""
    cli, conn = await connected_pair(client, server, addr)
    data = bytes(range(251)) * (size // 251)
    got = bytearray()
    async with trio.open_nursery() as nursery:
        async def send() -> None:
            await cli.send(data)
            cli.close()
        nursery.start_soon(send)
        await recv_until_eof(conn, got)
    assert got == data
    return data


async def _loopback_transfer(net, size: int) -> bytes:
    a = net.hosts["a"]
    return await _transfer(a, a, "127.0.0.1", size)


async def test_a_loopback_capture_shows_correct_tcp_checksums(tmp_path) -> None:
    path = tmp_path / "lo.pcapng"
    net = pystack.Network(seed=5)
    net.add_host("a")
    async with net:
        cap = net.capture(str(path))
        await _loopback_transfer(net, 240_000)  # three full segments, then 43,549 bytes
        cap.close()
    # (The writer's snaplen, 65535, cuts the few frames of a full 64 KiB IP packet.)
    packets = [p for p in rdpcap(str(path)) if TCP in p and len(bytes(p[IP])) == p[IP].len]
    assert any(len(p[TCP].payload) > 30_000 for p in packets)  # large segments, uncut
    assert len(packets) >= 8  # the handshake, the ACKs, the last segment, the FINs
    assert all(scapy_checksums_agree(p) for p in packets)


@counts_calls
async def test_loopback_computes_no_tcp_checksum_without_a_capture(monkeypatch) -> None:
    # CHECKSUM_PARTIAL skbs cross lo untouched and tcp_v4_rcv trusts them: no layer sums the
    # 64 KiB segments. (With a capture, the taps complete them: the test above.)
    calls = []
    real_help = pystack.net.core.dev.skb_checksum_help

    def counting_help(skb):
        calls.append(skb.tail - skb.csum_start)
        real_help(skb)
    monkeypatch.setattr(pystack.net.core.dev, "skb_checksum_help", counting_help)
    seen = []
    real_rcv_csum = tcp_ipv4.csum_ipv4_payload

    def counting_csum(*args):
        seen.append(args[-1])
        return real_rcv_csum(*args)
    monkeypatch.setattr(tcp_ipv4, "csum_ipv4_payload", counting_csum)
    net = pystack.Network(seed=5)
    net.add_host("a")
    async with net:
        await _loopback_transfer(net, 200_000)
    assert calls == [] and [n for n in seen if n > 100] == []


async def test_a_device_without_offload_gets_complete_checksums(tmp_path) -> None:
    # tun has no NETIF_F_HW_CSUM: validate_xmit completes the checksum before the driver.
    from pystack.drivers.net.tun import add_tun
    packets = []
    net = pystack.Network(seed=5)
    a = net.add_host("a")
    async with net:
        add_tun(a, "tun0", address="192.168.0.1/24", reader=packets.append)
        cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        with trio.move_on_after(0.5):  # the SYN goes out; nobody answers
            await cli.connect(("192.168.0.2", 80))
    syns = [IP(p) for p in packets if IP(p).haslayer(TCP)]
    assert syns and all(scapy_checksums_agree(p) for p in syns)


# -- the emulated NIC: checksum offload on both ends of the wire --------------------------------

async def _eth_transfer(net, a, b, size: int) -> bytes:
    return await _transfer(a, b, "10.0.0.2", size)


@counts_calls
async def test_untouched_frames_are_not_checksummed_in_software(monkeypatch) -> None:
    # The sending NIC leaves the checksum pending on the wire (WireFrame), the receiving NIC
    # hands the segment up CHECKSUM_PARTIAL: neither GRO nor tcp_v4_rcv sums a data segment.
    from pystack.drivers.net import nic
    from pystack.net.ipv4 import tcp_offload
    sums = []

    def counting(real):
        def csum(*args):
            sums.append(args[-1])
            return real(*args)
        return csum
    monkeypatch.setattr(tcp_offload, "csum_ipv4_payload", counting(tcp_offload.csum_ipv4_payload))
    monkeypatch.setattr(tcp_ipv4, "csum_ipv4_payload", counting(tcp_ipv4.csum_ipv4_payload))
    completed = []
    real_complete = nic.WireFrame.complete_csum
    monkeypatch.setattr(nic.WireFrame, "complete_csum",
                        lambda self: completed.append(len(self)) or real_complete(self))
    async with lan(2, seed=5) as (net, a, b):
        await _eth_transfer(net, a, b, 300_000)
    assert [n for n in sums if n > 100] == [] and completed == []
    assert b.stats()["Tcp"]["InCsumErrors"] == 0


async def test_an_ethernet_capture_shows_correct_checksums(tmp_path) -> None:
    path = tmp_path / "eth.pcapng"
    async with lan(2, seed=5) as (net, a, b):
        cap = net.capture(str(path))
        await _eth_transfer(net, a, b, 100_000)
        cap.close()
    packets = [p for p in rdpcap(str(path)) if TCP in p]
    assert sum(1 for p in packets if len(p[TCP].payload) == 1448) > 100  # both NICs' taps
    assert all(scapy_checksums_agree(p) for p in packets)


async def test_frames_corrupted_on_the_wire_are_caught_and_counted() -> None:
    # netem's corruption completes the pending checksum before it flips a bit, so the
    # receiver (which then verifies in software) catches the flip: InCsumErrors, and the data
    # is still exact once the corruption stops.
    net = pystack.Network(seed=9)
    a, b = net.add_host("a"), net.add_host("b")
    link = net.add_link(a, b, subnet="10.0.0.0/24")
    async with net:
        cli, conn = await connected_pair(a, b, "10.0.0.2")
        link.a_to_b.set(corrupt=1.0)
        data = bytes(range(256)) * 200
        await cli.send(data)
        await trio.sleep(2)
        corrupted = link.a_to_b.corrupted
        tcp_errors = b.stats()["Tcp"]["InCsumErrors"]
        ip_errors = b.drops().get("IP_CSUM", 0)
        assert corrupted >= 10
        # A flip in the 14 Ethernet bytes is not a checksum's to catch; every other one is.
        assert tcp_errors + ip_errors >= corrupted - corrupted // 4 and tcp_errors > 0
        link.a_to_b.set(corrupt=0.0)
        cli.close()
        got = bytearray()
        with trio.fail_after(300):
            await recv_until_eof(conn, got)
        assert got == data


@counts_calls
async def test_a_verified_segment_is_not_verified_again(monkeypatch, tmp_path) -> None:
    # With a capture on, the taps complete every checksum, so frames cross the wire
    # complete and the receiver checks them in software, in GRO; a lone segment leaves GRO
    # CHECKSUM_UNNECESSARY, and tcp_v4_rcv must not sum it again.
    from pystack.net.ipv4 import tcp_offload
    gro, tcp = [], []

    def counting(real, into):
        def csum(*args):
            into.append(args[-1])
            return real(*args)
        return csum
    monkeypatch.setattr(tcp_offload, "csum_ipv4_payload",
                        counting(tcp_offload.csum_ipv4_payload, gro))
    monkeypatch.setattr(tcp_ipv4, "csum_ipv4_payload", counting(tcp_ipv4.csum_ipv4_payload, tcp))
    net = pystack.Network(seed=5)
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24")
    async with net:
        cap = net.capture(str(tmp_path / "eth.pcapng"))
        cli, conn = await connected_pair(a, b, "10.0.0.2")
        cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(10):  # ten lone segments, each PSH: GRO flushes each by itself
            await cli.send(bytes([i]) * 1000)
            assert await conn.recv(2000) == bytes([i]) * 1000
        cap.close()
    assert len([n for n in gro if n > 1000]) == 10  # each data segment summed once, in GRO
    assert [n for n in tcp if n > 1000] == []  # and not again in tcp_v4_rcv
