"""ICMP (pystack/net/ipv4/icmp.py): echo, the errors a host sends, and their rate limit.

Reference: net/ipv4/icmp.c (icmp_echo, __icmp_send, icmpv4_xrlim_allow, icmp_global_allow),
net/ipv4/inetpeer.c (inet_peer_xrlim_allow: a token bucket of icmp_ratelimit per message,
burst XRLIM_BURST_FACTOR = 6, starting full), RFC 1122 §3.2.2 (no errors about broadcasts).
"""

from __future__ import annotations

import socket

import pytest
import trio
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether

import pystack

from nethelpers import mac, sent_frames

A, B = "10.0.0.1", "10.0.0.2"
CLOSED = 9999


def icmp_of(frames: list[Ether]) -> list[ICMP]:
    return [f[ICMP] for f in frames if ICMP in f]


def two_hosts(net: pystack.Network):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24")
    return a, b


async def test_echo_request_and_reply_counters() -> None:
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        await a.ping(B)
        sa, sb = a.stats(), b.stats()
        assert {k: sa["Icmp"][k] for k in ("OutMsgs", "OutEchos", "InMsgs", "InEchoReps",
                                           "InEchos", "OutEchoReps", "InErrors")} == {
            "OutMsgs": 1, "OutEchos": 1, "InMsgs": 1, "InEchoReps": 1,
            "InEchos": 0, "OutEchoReps": 0, "InErrors": 0}
        assert {k: sb["Icmp"][k] for k in ("InMsgs", "InEchos", "OutMsgs", "OutEchoReps")} == {
            "InMsgs": 1, "InEchos": 1, "OutMsgs": 1, "OutEchoReps": 1}
        assert sa["IcmpMsg"] == {"InType0": 1, "OutType8": 1}
        assert sb["IcmpMsg"] == {"InType8": 1, "OutType0": 1}


async def test_echo_reply_echoes_identifier_sequence_and_data() -> None:
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        out = sent_frames(a)
        back = sent_frames(b)
        await a.ping(B, size=100)
        (req,) = [i for i in icmp_of(out) if i.type == 8]
        (rep,) = [i for i in icmp_of(back) if i.type == 0]
        assert (rep.code, rep.id, rep.seq) == (0, req.id, req.seq)
        assert bytes(rep.payload) == bytes(req.payload) and len(bytes(req.payload)) == 100
        assert (rep.underlayer.src, rep.underlayer.dst) == (B, A)


async def test_echo_to_broadcast_is_ignored() -> None:
    # icmp_echo_ignore_broadcasts = 1 (the default)
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        with pytest.raises(TimeoutError):
            await a.ping("10.0.0.255", timeout=1)
        s = b.stats()["Icmp"]
        assert (s["InMsgs"], s["InEchos"], s["InErrors"], s["OutEchoReps"]) == (1, 1, 1, 0)
        assert b.drops() == {"INVALID_PROTO": 1}


async def test_echo_reply_keeps_the_request_tos() -> None:
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        back = sent_frames(b)
        request = Ether(dst=mac(b), src=mac(a)) / IP(src=A, dst=B, tos=0x10) / ICMP(id=7)
        b.interface("eth0").dma_rx(bytearray(bytes(request)))
        await trio.sleep(0.1)
        (reply,) = [f for f in back if ICMP in f]
        assert reply[ICMP].type == 0 and reply[IP].tos == 0x10


async def test_bad_icmp_checksum_is_counted_and_dropped() -> None:
    # icmp_rcv: InMsgs first, then the checksum: InCsumErrors and InErrors, ICMP_CSUM.
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        frame = Ether(dst=mac(b), src=mac(a)) / IP(src=A, dst=B) / ICMP(chksum=0x1234)
        b.interface("eth0").dma_rx(bytearray(bytes(frame)))
        await trio.sleep(0.1)
        s = b.stats()["Icmp"]
        assert (s["InMsgs"], s["InCsumErrors"], s["InErrors"], s["InEchos"]) == (1, 1, 1, 0)
        assert s["OutMsgs"] == 0
        assert b.drops() == {"ICMP_CSUM": 1}


async def test_unknown_icmp_type_is_discarded() -> None:
    # RFC 1122 3.2.2: unknown types (above NR_ICMP_TYPES, 18) are silently discarded.
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        frame = Ether(dst=mac(b), src=mac(a)) / IP(src=A, dst=B) / ICMP(type=42) / b"?"
        b.interface("eth0").dma_rx(bytearray(bytes(frame)))
        await trio.sleep(0.1)
        assert b.stats()["Icmp"]["InErrors"] == 1
        assert b.stats()["IcmpMsg"] == {"InType42": 1}
        assert b.drops() == {"UNHANDLED_PROTO": 1}


async def test_port_unreachable_for_closed_udp_port_quotes_the_datagram() -> None:
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        back = sent_frames(b)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.sendto(b"knock", (B, CLOSED))
        await trio.sleep(0.1)
        assert b.stats()["Udp"]["NoPorts"] == 1
        assert b.stats()["Icmp"]["OutDestUnreachs"] == 1
        assert b.drops() == {"NO_SOCKET": 1}
        assert a.stats()["Icmp"]["InDestUnreachs"] == 1
        (err,) = icmp_of(back)
        assert (err.type, err.code) == (3, 3)
        assert (err.underlayer.src, err.underlayer.dst) == (B, A)
        assert err.underlayer.tos == 0xC0  # IPTOS_PREC_INTERNETCONTROL, as Linux sends errors
        quoted = err[IPerror]
        assert (quoted.src, quoted.dst, quoted.proto) == (A, B, 17)
        assert err[UDPerror].dport == CLOSED
        assert bytes(err[UDPerror].payload) == b"knock"  # small: quoted whole
        # an unconnected socket is not told (udp_err: not connected, no IP_RECVERR)
        assert not client.is_readable()


async def test_no_port_unreachable_for_a_broadcast() -> None:
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        back = sent_frames(b)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        await client.sendto(b"all", ("10.0.0.255", CLOSED))
        await trio.sleep(0.1)
        assert b.stats()["Udp"]["IgnoredMulti"] == 1
        assert b.stats()["Udp"]["NoPorts"] == 0
        assert b.stats()["Icmp"]["OutMsgs"] == 0
        assert icmp_of(back) == []


async def test_port_unreachables_to_one_peer_are_rate_limited() -> None:
    # icmp_ratelimit 1000 ms, burst 6: of 10 at one instant, 6 go and 4 are suppressed; a
    # token comes back each second.
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(10):
            await client.sendto(b"%d" % i, (B, CLOSED))
        await trio.sleep(0.5)
        sb = b.stats()
        assert sb["Udp"]["NoPorts"] == 10
        assert sb["Icmp"]["OutDestUnreachs"] == 6
        assert sb["Icmp"]["OutRateLimitHost"] == 4
        assert a.stats()["Icmp"]["InDestUnreachs"] == 6
        await trio.sleep(0.6)  # one second after the burst: one token back
        for i in range(2):
            await client.sendto(b"%d" % i, (B, CLOSED))
        await trio.sleep(0.1)
        assert b.stats()["Icmp"]["OutDestUnreachs"] == 7
        assert b.stats()["Icmp"]["OutRateLimitHost"] == 5


async def test_port_unreachables_over_loopback_are_not_rate_limited() -> None:
    net = pystack.Network(seed=21)
    async with net:
        a = net.add_host("a")
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(20):
            await client.sendto(b"%d" % i, ("127.0.0.1", CLOSED))
        await trio.sleep(0.1)
        s = a.stats()
        assert s["Udp"]["NoPorts"] == 20
        assert s["Icmp"]["OutDestUnreachs"] == 20
        assert s["Icmp"]["InDestUnreachs"] == 20
        assert s["Icmp"]["OutRateLimitHost"] == 0
        assert s["Icmp"]["OutRateLimitGlobal"] == 0


async def test_protocol_unreachable_for_an_unknown_protocol() -> None:
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        back = sent_frames(b)
        frame = bytes(Ether(dst=mac(b), src=mac(a)) / IP(src=A, dst=B, proto=200)
                      / b"mystery-protocol")
        b.interface("eth0").dma_rx(bytearray(frame))
        await trio.sleep(0.1)
        assert b.stats()["Ip"]["InUnknownProtos"] == 1
        assert b.drops() == {"IP_NOPROTO": 1}
        (err,) = icmp_of(back)
        assert (err.type, err.code) == (3, 2)
        assert err[IPerror].proto == 200
        assert a.stats()["Icmp"]["InDestUnreachs"] == 1


async def test_no_error_about_an_icmp_error() -> None:
    # RFC 1122 3.2.2: never an ICMP error about an ICMP error. A datagram from a spoofed
    # neighbour draws a port unreachable; resolving the spoofed address fails, and
    # arp_error_report's host unreachable about that ICMP error is suppressed.
    net = pystack.Network(seed=21)
    async with net:
        a, b = two_hosts(net)
        frame = bytes(Ether(dst=mac(b), src="02:00:00:00:00:77") / IP(src="10.0.0.77", dst=B)
                      / UDP(sport=1, dport=CLOSED) / b"spoofed")
        b.interface("eth0").dma_rx(bytearray(frame))
        await trio.sleep(5)
        assert b.neighbour_state("10.0.0.77") == "FAILED"
        assert b.drops() == {"NO_SOCKET": 1, "NEIGH_FAILED": 1}
        s = b.stats()["Icmp"]
        assert (s["OutDestUnreachs"], s["InDestUnreachs"], s["OutMsgs"]) == (1, 0, 1)
