"""IPv4 input validation (pystack/net/ipv4/ip_input.py, and UDP's header checks in udp.py):
malformed frames, injected into a NIC's rx ring with `dma_rx` as if from the wire, are dropped
with the counter and drop reason Linux uses (net/ipv4/ip_input.c ip_rcv_core,
net/ipv4/udp.c __udp4_lib_rcv), nothing escapes the host, and the host keeps working.
"""

from __future__ import annotations

import socket
from typing import Callable

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, fragment
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

import pystack

from nethelpers import mac

A, B = "10.0.0.1", "10.0.0.2"


def eth(a, b):
    return Ether(dst=mac(b), src=mac(a))


def valid_udp(a, b, payload: bytes = b"hello") -> bytes:
    return bytes(eth(a, b) / IP(src=A, dst=B) / UDP(sport=5000, dport=9) / payload)


def with_byte(frame: bytes, index: int, value: int) -> bytes:
    out = bytearray(frame)
    out[index] = value
    return bytes(out)


# Each case: a frame from a to b, the SNMP counters it must move (group, name) and the drop
# reasons it must leave, as Linux's ip_rcv_core / __udp4_lib_rcv would.
CASES: dict[str, tuple[Callable, dict[tuple[str, str], int], dict[str, int]]] = {
    "truncated ip header": (
        lambda a, b: valid_udp(a, b)[:14 + 12],
        {("Ip", "InReceives"): 1, ("Ip", "InHdrErrors"): 1}, {"IP_INHDR": 1}),
    "ip version 6": (
        lambda a, b: with_byte(valid_udp(a, b), 14, 0x65),
        {("Ip", "InReceives"): 1, ("Ip", "InHdrErrors"): 1}, {"IP_INHDR": 1}),
    "ihl below 5": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B, ihl=4) / UDP(dport=9) / b"x"),
        {("Ip", "InReceives"): 1, ("Ip", "InHdrErrors"): 1}, {"IP_INHDR": 1}),
    "ihl beyond the packet": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B, ihl=15))[:14 + 40],
        {("Ip", "InReceives"): 1, ("Ip", "InHdrErrors"): 1}, {"IP_INHDR": 1}),
    "bad header checksum": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B, chksum=0x1234) / UDP(dport=9) / b"x"),
        {("Ip", "InReceives"): 1, ("Ip", "InHdrErrors"): 1, ("IpExt", "InCsumErrors"): 1},
        {"IP_CSUM": 1}),
    "total length beyond the frame": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B, len=200) / UDP(dport=9) / b"x"),
        {("Ip", "InReceives"): 1, ("IpExt", "InTruncatedPkts"): 1}, {"PKT_TOO_SMALL": 1}),
    "total length below the header": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B, len=12) / UDP(dport=9) / b"x"),
        {("Ip", "InReceives"): 1, ("Ip", "InHdrErrors"): 1}, {"IP_INHDR": 1}),
    "destination not ours (not forwarding)": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst="10.0.0.77") / UDP(dport=9) / b"x"),
        {("Ip", "InReceives"): 1, ("Ip", "InAddrErrors"): 1}, {"IP_INADDRERRORS": 1}),
    "bad udp checksum": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B) / UDP(dport=9, chksum=0x1234) / b"x"),
        {("Ip", "InReceives"): 1, ("Ip", "InDelivers"): 1, ("Udp", "InCsumErrors"): 1,
         ("Udp", "InErrors"): 1}, {"UDP_CSUM": 1}),
    "udp length beyond the datagram": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B) / UDP(dport=9, len=100) / b"x"),
        {("Ip", "InReceives"): 1, ("Ip", "InDelivers"): 1, ("Udp", "InErrors"): 1},
        {"PKT_TOO_SMALL": 1}),
    "udp header truncated": (
        lambda a, b: bytes(eth(a, b) / IP(src=A, dst=B, proto=17) / b"abc"),
        {("Ip", "InReceives"): 1, ("Ip", "InDelivers"): 1, ("Udp", "InErrors"): 1},
        {"PKT_TOO_SMALL": 1}),
}

WATCHED = [("Ip", n) for n in ("InReceives", "InHdrErrors", "InDelivers", "InDiscards",
                               "InAddrErrors", "InUnknownProtos")] + \
          [("IpExt", n) for n in ("InCsumErrors", "InTruncatedPkts")] + \
          [("Udp", n) for n in ("InDatagrams", "InErrors", "InCsumErrors", "NoPorts")]


def counters(host) -> dict[tuple[str, str], int]:
    snap = host.stats()
    return {(g, n): snap[g][n] for g, n in WATCHED}


async def two_hosts(net: pystack.Network):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24")
    server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await server.bind(("0.0.0.0", 9))
    return a, b, server


def queued(s) -> int:
    return len(s.task.files.fget(s.fileno()).private_data.sk.sk_receive_queue)


@pytest.mark.parametrize("case", list(CASES))
async def test_malformed_frame_is_dropped_and_counted(case: str) -> None:
    make, moved, reasons = CASES[case]
    net = pystack.Network(seed=5)
    async with net:
        a, b, server = await two_hosts(net)
        before = counters(b)
        b.interface("eth0").dma_rx(bytearray(make(a, b)))
        await trio.sleep(0.01)
        after = counters(b)
        delta = {k: after[k] - before[k] for k in WATCHED if after[k] != before[k]}
        assert delta == moved
        assert b.drops() == reasons
        assert queued(server) == 0
        await a.ping(B)  # still alive


async def test_valid_frame_is_delivered() -> None:
    # The control for the cases above: the unaltered frame reaches the socket.
    net = pystack.Network(seed=5)
    async with net:
        a, b, server = await two_hosts(net)
        b.interface("eth0").dma_rx(bytearray(valid_udp(a, b)))
        await trio.sleep(0.01)
        assert await server.recvfrom(100) == (b"hello", (A, 5000))
        assert b.drops() == {}


async def test_ethernet_padding_is_trimmed() -> None:
    # A short datagram arrives padded to 60 bytes: ip_rcv trims to tot_len (pskb_trim_rcsum).
    net = pystack.Network(seed=5)
    async with net:
        a, b, server = await two_hosts(net)
        frame = valid_udp(a, b, b"hi")
        assert len(frame) < 60
        b.interface("eth0").dma_rx(bytearray(frame + b"\xee" * (60 - len(frame))))
        await trio.sleep(0.01)
        assert await server.recvfrom(100) == (b"hi", (A, 5000))
        assert b.drops() == {}


async def test_truncated_ethernet_frame_is_a_length_error() -> None:
    net = pystack.Network(seed=5)
    async with net:
        a, b, _server = await two_hosts(net)
        nic = b.interface("eth0")
        nic.dma_rx(bytearray(nic.dev_addr + b"\x02\x00\x00\x00"))  # 10 bytes
        await trio.sleep(0.01)
        assert nic.stats.rx_length_errors == 1
        assert nic.stats.rx_errors == 1
        assert b.stats()["Ip"]["InReceives"] == 0
        await a.ping(B)


async def test_unknown_ethertype_counts_rx_nohandler() -> None:
    net = pystack.Network(seed=5)
    async with net:
        a, b, _server = await two_hosts(net)
        nic = b.interface("eth0")
        nic.dma_rx(bytearray(bytes(Ether(dst=mac(b), src=mac(a), type=0x88B5) / (b"z" * 46))))
        await trio.sleep(0.01)
        assert nic.stats.rx_nohandler == 1
        assert b.drops() == {"UNHANDLED_PROTO": 1}


# -- fuzzing ----------------------------------------------------------------------------------

def valid_frames(a, b) -> list[bytes]:
    """One frame of each kind b parses: UDP, ICMP echo, ARP, an IP fragment."""
    big = IP(src=A, dst=B, id=77) / UDP(sport=5000, dport=9) / (b"f" * 100)
    return [
        valid_udp(a, b),
        bytes(eth(a, b) / IP(src=A, dst=B) / ICMP(id=1, seq=1) / b"abcdefgh"),
        bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=mac(a))
              / ARP(op=1, hwsrc=mac(a), psrc=A, pdst=B)),
        bytes(eth(a, b) / fragment(big, fragsize=64)[0]),
    ]


_VALID: list[bytes] = []


def cached_valid_frames() -> list[bytes]:
    """valid_frames for the hosts `survive` builds (MACs depend only on the seed), built once:
    scapy is slow next to the emulation."""
    if not _VALID:
        net = pystack.Network(seed=5)
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        _VALID.extend(valid_frames(a, b))
    return _VALID


def survive(frames: Callable[[object, object], list[bytes]]) -> None:
    """Run a fresh pair of hosts, inject `frames(a, b)` into b, then ping b from a."""

    async def scenario() -> None:
        net = pystack.Network(seed=5)
        async with net:
            a, b, _server = await two_hosts(net)
            for frame in frames(a, b):
                b.interface("eth0").dma_rx(bytearray(frame))
            await trio.sleep(40)  # past reassembly and neighbour timers
            assert await a.ping(B, timeout=5) >= 0
            assert await b.ping(A, timeout=5) >= 0

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(kind=st.integers(0, 3), bit=st.integers(0, 8 * 200))
def test_single_bit_flip_of_a_valid_frame_never_breaks_the_host(kind: int, bit: int) -> None:
    def frames(a, b):
        frame = bytearray(cached_valid_frames()[kind])
        assert frame[:6] == b.interface("eth0").dev_addr or kind == 2
        frame[(bit // 8) % len(frame)] ^= 1 << (bit % 8)
        return [bytes(frame)]

    survive(frames)


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(ethertype=st.sampled_from([0x0800, 0x0806, 0x86DD, 0x1234]),
       body=st.binary(min_size=0, max_size=120))
def test_random_bytes_after_a_valid_ethernet_header_never_break_the_host(
        ethertype: int, body: bytes) -> None:
    survive(lambda a, b: [bytes(Ether(dst=mac(b), src=mac(a), type=ethertype)) + body])


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(dst=st.sampled_from(["random", "ours", "broadcast"]), body=st.binary(max_size=80))
def test_random_bytes_as_a_frame_never_break_the_host(dst: str, body: bytes) -> None:
    # Any length, runts included; the destination MAC random, b's, or broadcast.
    def frames(a, b):
        if dst == "random":
            return [body]
        head = b.interface("eth0").dev_addr if dst == "ours" else b"\xff" * 6
        return [head + body]

    survive(frames)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(proto=st.sampled_from([1, 6, 17, 200]), mf=st.booleans(), offset=st.integers(0, 8191),
       body=st.binary(min_size=0, max_size=80))
def test_valid_ipv4_header_with_random_payload_never_breaks_the_host(
        proto: int, mf: bool, offset: int, body: bytes) -> None:
    # A header that passes ip_rcv_core's checks, then random bytes: routing, reassembly and
    # the protocol handlers see the garbage.
    survive(lambda a, b: [bytes(eth(a, b) / IP(src=A, dst=B, proto=proto, flags=int(mf),
                                               frag=offset) / Raw(body))])
