"""IPv4 fragmentation (ip_output.py's ip_do_fragment) and reassembly (ip_fragment.py).

Reference: net/ipv4/ip_output.c (ip_do_fragment), net/ipv4/ip_fragment.c (ip_defrag,
ip_frag_queue, ip_expire), net/ipv4/inet_fragment.c (inet_frag_queue_insert: duplicates are
dropped alone, overlaps kill the queue; inet_frag_find refuses new fragments while the
memory in use is over ipfrag_high_thresh), Documentation/networking/ip-sysctl.rst
(ipfrag_time 30 s).
"""

from __future__ import annotations

import random
import socket

import pytest
import trio
from scapy.layers.inet import ICMP, IP, UDP, IPerror, fragment
from scapy.layers.l2 import Ether

import pystack

from nethelpers import mac, sent_frames

A, B = "10.0.0.1", "10.0.0.2"
PORT = 9


async def two_hosts(net: pystack.Network):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24", mtu=1500)
    server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await server.bind(("0.0.0.0", PORT))
    return a, b, server


def fragments(a, b, payload: bytes, ident: int = 4242) -> list[bytes]:
    """A UDP datagram from a to b, cut as Linux cuts it for MTU 1500 (1480-byte pieces)."""
    dgram = IP(src=A, dst=B, id=ident) / UDP(sport=5000, dport=PORT) / payload
    return [bytes(Ether(dst=mac(b), src=mac(a)) / f) for f in fragment(dgram, fragsize=1480)]


def inject(host, frames) -> None:
    for f in frames:
        host.interface("eth0").dma_rx(bytearray(f))


PAYLOAD = bytes(random.Random(1).randrange(256) for _ in range(4000))


async def test_large_datagram_is_fragmented_and_reassembled() -> None:
    net = pystack.Network(seed=31)
    async with net:
        a, b, server = await two_hosts(net)
        await a.ping(B)
        out = sent_frames(a)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.sendto(PAYLOAD, (B, PORT))
        data, _peer = await server.recvfrom(65536)
        assert data == PAYLOAD
        assert a.stats()["Ip"]["FragCreates"] == 3
        assert a.stats()["Ip"]["FragOKs"] == 1
        assert b.stats()["Ip"]["ReasmReqds"] == 3
        assert b.stats()["Ip"]["ReasmOKs"] == 1
        assert b.stats()["Udp"]["InDatagrams"] == 1
        frags = [f[IP] for f in out if IP in f and f[IP].proto == 17]
        assert [(f.frag * 8, f.flags.MF, len(f)) for f in frags] == [
            (0, 1, 1500), (1480, 1, 1500), (2960, 0, 20 + 4008 - 2960)]
        assert len({f.id for f in frags}) == 1 and not any(f.flags.DF for f in frags)


@pytest.mark.parametrize("order", ["reversed", "shuffled", "middle first"])
async def test_fragments_out_of_order_reassemble(order: str) -> None:
    net = pystack.Network(seed=31)
    async with net:
        a, b, server = await two_hosts(net)
        frames = fragments(a, b, PAYLOAD * 2)  # 6 fragments
        if order == "reversed":
            frames.reverse()
        elif order == "shuffled":
            random.Random(7).shuffle(frames)
        else:
            frames = frames[2:4] + frames[:2] + frames[4:]
        inject(b, frames)
        data, peer = await server.recvfrom(65536)
        assert data == PAYLOAD * 2 and peer == (A, 5000)
        assert b.stats()["Ip"]["ReasmReqds"] == len(frames) == 6
        assert b.stats()["Ip"]["ReasmOKs"] == 1
        assert b.drops() == {}


async def test_duplicate_fragment_is_dropped_alone() -> None:
    net = pystack.Network(seed=31)
    async with net:
        a, b, server = await two_hosts(net)
        frames = fragments(a, b, PAYLOAD)
        inject(b, [frames[0], frames[1], frames[1], frames[2]])
        assert (await server.recvfrom(65536))[0] == PAYLOAD
        assert b.drops() == {"DUP_FRAG": 1}
        assert b.stats()["Ip"]["ReasmOKs"] == 1


async def test_missing_fragment_times_out_with_icmp_time_exceeded() -> None:
    net = pystack.Network(seed=31)
    async with net:
        a, b, server = await two_hosts(net)
        back = sent_frames(b)
        frames = fragments(a, b, PAYLOAD)
        inject(b, [frames[0], frames[2]])
        await trio.sleep(29.9)
        assert b.stats()["Ip"]["ReasmTimeout"] == 0
        await trio.sleep(0.2)
        s = b.stats()["Ip"]
        assert (s["ReasmTimeout"], s["ReasmFails"], s["ReasmOKs"]) == (1, 1, 0)
        assert b.drops() == {"FRAG_REASM_TIMEOUT": 2}
        await trio.sleep(0.1)
        (err,) = [f[ICMP] for f in back if ICMP in f]
        assert (err.type, err.code) == (11, 1)  # time exceeded, fragment reassembly
        assert err[IPerror].id == 4242 and err[IPerror].frag == 0
        assert a.stats()["Icmp"]["InTimeExcds"] == 1
        assert not server.is_readable()
        assert b.net.ipv4.frags.mem == 0 and not b.net.ipv4.frags.queues


async def test_timeout_without_first_fragment_sends_no_icmp() -> None:
    # ip_expire: only a queue holding the first fragment can quote the datagram.
    net = pystack.Network(seed=31)
    async with net:
        a, b, _server = await two_hosts(net)
        frames = fragments(a, b, PAYLOAD)
        inject(b, frames[1:])
        await trio.sleep(31)
        assert b.stats()["Ip"]["ReasmTimeout"] == 1
        assert b.stats()["Icmp"]["OutMsgs"] == 0


async def test_overlapping_fragment_discards_the_datagram() -> None:
    net = pystack.Network(seed=31)
    async with net:
        a, b, server = await two_hosts(net)
        good = fragments(a, b, PAYLOAD)
        # a second fragment starting 480 bytes early, inside the first
        first = Ether(good[0])
        overlap = Ether(dst=first.dst, src=first.src) / IP(
            src=A, dst=B, id=4242, proto=17, flags="MF", frag=1000 // 8) / (b"o" * 1480)
        inject(b, [good[0], bytes(overlap)])
        await trio.sleep(0.01)
        assert b.stats()["IpExt"]["ReasmOverlaps"] == 1
        assert b.stats()["Ip"]["ReasmFails"] == 1
        assert not b.net.ipv4.frags.queues  # the whole queue went
        assert sum(b.drops().values()) == 2  # the overlapping piece and the one it hit
        inject(b, good[1:])  # the rest cannot complete a datagram any more
        await trio.sleep(31)
        assert not server.is_readable()
        assert b.stats()["Ip"]["ReasmOKs"] == 0


async def test_incomplete_datagram_flood_stays_under_high_thresh() -> None:
    net = pystack.Network(seed=31)
    async with net:
        a, b, _server = await two_hosts(net)
        thresh = 100_000
        b.set_sysctl("net.ipv4.ipfrag_high_thresh", thresh)
        frags = b.net.ipv4.frags
        first = Ether(fragments(a, b, PAYLOAD)[0])
        for ident in range(200):
            first[IP].id = ident
            del first[IP].chksum
            inject(b, [bytes(first)])
        await trio.sleep(0.01)
        held = len(frags.queues)
        assert 0 < held < 200
        assert frags.mem <= thresh
        assert b.stats()["Ip"]["ReasmReqds"] == 200
        assert b.stats()["Ip"]["ReasmFails"] == 200 - held
        assert sum(b.drops().values()) == 200 - held
        await trio.sleep(31)  # every queue expires, memory returns
        assert frags.mem == 0 and not frags.queues
        assert b.stats()["Ip"]["ReasmTimeout"] == held
