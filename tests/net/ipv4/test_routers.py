"""Routers between subnets: issue 7's scenarios, each as its "What it must show" point says.

Reference: RFC 1812 §5.2-5.3 (forwarding, TTL), RFC 791 §3.2 (fragmentation), RFC 1191 (path
MTU discovery), RFC 792; net/ipv4/ip_forward.c, ip_output.c, ip_fragment.c, route.c (PMTU
exceptions, `ip route get`), ip_sockglue.c (the error queue traceroute reads); traceroute(8).

The world: three subnets joined by two routers.

    a 10.0.1.1 ── 10.0.1.2 r1 10.0.2.1 ── 10.0.2.2 r2 10.0.3.1 ── 10.0.3.2 b
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import struct
from typing import AsyncIterator

import pytest
import trio
from scapy.layers.inet import ICMP, IP, UDP, IPerror
from scapy.layers.l2 import Ether

import pystack
from pystack.net.core.netfilter import (NF_ACCEPT, NF_DROP, NF_INET_LOCAL_OUT,
                                        NF_INET_PRE_ROUTING, NF_STOLEN, nf_register_hook)
from pystack.net.ipv4.ip_input import ip_rcv_finish
from pystack.pcap import read_pcapng
from pystack.uapi.errqueue import SO_EE_ORIGIN_ICMP, SockExtendedErr

IP_RECVERR = 11  # include/uapi/linux/in.h (not in Python's socket module)
A, R1_A, R1_B, R2_B, R2_C, B = ("10.0.1.1", "10.0.1.2", "10.0.2.1", "10.0.2.2", "10.0.3.1",
                                "10.0.3.2")
PORT = 5001


@contextlib.asynccontextmanager
async def three_subnets(*, middle_mtu: int = 1500, last_mtu: int = 1500, seed: int = 7
                        ) -> AsyncIterator[tuple]:
    net = pystack.Network(seed=seed)
    a, b = net.add_host("a"), net.add_host("b")
    r1, r2 = net.add_router("r1"), net.add_router("r2")
    net.add_link(a, r1, subnet="10.0.1.0/24")
    net.add_link(r1, r2, subnet="10.0.2.0/24", mtu=middle_mtu)
    net.add_link(r2, b, subnet="10.0.3.0/24", mtu=last_mtu)
    a.add_route("default", via=R1_A)
    r1.add_route("10.0.3.0/24", via=R2_B)
    r2.add_route("10.0.1.0/24", via=R1_B)
    b.add_route("default", via=R2_C)
    async with net:
        yield net, a, r1, r2, b


async def tcp_transfer(a: pystack.Host, b: pystack.Host, data: bytes,
                       info: list | None = None) -> bytes:
    """Send `data` from a to b:PORT over TCP; return what b read. The sender's TCP_INFO,
    read before it closes, goes to `info` if given."""
    srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    await srv.bind(("0.0.0.0", PORT))
    srv.listen(1)
    got = bytearray()

    async def serve() -> None:
        conn, _ = await srv.accept()
        while chunk := await conn.recv(65536):
            got.extend(chunk)
        conn.close()

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
            await cli.connect((B, PORT))
            view = memoryview(data)
            while view:
                n = await cli.send(view)
                view = view[n:]
            if info is not None:
                info.append(cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104))
            cli.close()
    srv.close()
    return bytes(got)


def recverr_socket(host: pystack.Host, ttl: int | None = None):
    s = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    if ttl is not None:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    return s


async def read_error(s) -> tuple[bytes, tuple, SockExtendedErr]:
    data, anc, flags, addr = await s.recvmsg(65536, 1024, socket.MSG_ERRQUEUE)
    assert flags & socket.MSG_ERRQUEUE
    ((level, type_, raw),) = anc
    assert (level, type_) == (socket.IPPROTO_IP, IP_RECVERR)
    return data, addr, SockExtendedErr.parse(raw)


# -- 1. ping, TCP, TTL 1 and traceroute across two routers ------------------------------------

async def test_ping_and_a_tcp_transfer_cross_both_routers() -> None:
    async with three_subnets() as (net, a, r1, r2, b):
        rtt = await a.ping(B)
        assert rtt >= 0
        data = random.Random(1).randbytes(300_000)
        assert await tcp_transfer(a, b, data) == data
        for r in (r1, r2):
            # GRO merges what arrives in one NAPI poll, and IP counts each skb once (as
            # Linux does): fewer datagrams than the 208 segments the data took, but some.
            assert r.stats()["Ip"]["ForwDatagrams"] > 10
            sent = sum(r.interface(n).stats.tx_packets for n in ("eth0", "eth1"))
            assert sent > 200  # the segments, cut again for each wire
        assert a.stats()["Ip"]["ForwDatagrams"] == b.stats()["Ip"]["ForwDatagrams"] == 0


async def test_a_ttl_1_probe_gets_time_exceeded_from_the_first_router(tmp_path) -> None:
    path = tmp_path / "ttl1.pcapng"
    async with three_subnets() as (net, a, r1, r2, b):
        cap = net.capture(str(path))
        with pytest.raises(OSError) as e:
            await a.ping(B, ttl=1)
        assert e.value.errno == errno.EHOSTUNREACH
        s = recverr_socket(a, ttl=1)
        await s.sendto(b"probe", (B, 33434))
        await trio.sleep(0.1)
        data, addr, ee = await read_error(s)
        assert (data, addr) == (b"probe", (B, 33434))
        assert (ee.ee_errno, ee.ee_origin, ee.ee_type, ee.ee_code) == (
            errno.EHOSTUNREACH, SO_EE_ORIGIN_ICMP, 11, 0)
        assert ee.offender == int.from_bytes(socket.inet_aton(R1_A), "big")
        assert r1.stats()["Icmp"]["OutTimeExcds"] == 2
        assert r2.stats()["Ip"]["InReceives"] == 0  # nothing got past r1
        cap.close()
    errors = [Ether(p.data) for p in read_pcapng(path) if p.interface_name == "a:eth0"]
    errors = [f for f in errors if ICMP in f and f[ICMP].type == 11]
    assert [(f[IP].src, f[IP].dst, f[ICMP].code, f[IPerror].ttl) for f in errors] == [
        (R1_A, A, 0, 1)] * 2


async def test_traceroute_lists_both_routers_then_the_target(tmp_path) -> None:
    path = tmp_path / "traceroute.pcapng"
    async with three_subnets() as (net, a, r1, r2, b):
        net.links[1].set(delay=0.010)  # r1 — r2: 10 ms each way
        cap = net.capture(str(path))
        tr = await a.traceroute(B)
        cap.close()
        assert [hop.address for hop in tr] == [R1_A, R2_B, B]
        assert [len(hop.probes) for hop in tr] == [3, 3, 3]
        assert all(p.address == hop.address and p.annotation == "" for hop in tr
                   for p in hop.probes)
        # the first probe waits while r1 resolves r2's address (ARP across the 10 ms link)
        assert [round(p.rtt, 6) for p in tr[1].probes] == [0.04, 0.02, 0.02]
        lines = str(tr).splitlines()
        assert lines[0] == "traceroute to 10.0.3.2 (10.0.3.2), 30 hops max, 60 byte packets"
        assert lines[2] == " 2  10.0.2.2  40.000 ms  20.000 ms  20.000 ms"
        assert lines[1].startswith(" 1  10.0.1.2  ") and lines[3].startswith(" 3  10.0.3.2  ")
        # three time-exceeded from each router, three port unreachables from b
        assert [h.stats()["Icmp"]["OutTimeExcds"] for h in (r1, r2)] == [3, 3]
        assert b.stats()["Icmp"]["OutDestUnreachs"] == 3
        assert b.stats()["Udp"]["NoPorts"] == 3
    # the probes as traceroute(8) sends them: 60 bytes, TTL 1, 1, 1, 2 …, ports from 33434
    probes = [Ether(p.data) for p in read_pcapng(path) if p.interface_name == "a:eth0"]
    probes = [f[IP] for f in probes if IP in f and f[IP].src == A and f[IP].proto == 17]
    assert [(f.ttl, f[UDP].dport, f.len) for f in probes] == [
        (ttl, 33434 + i, 60) for i, ttl in enumerate([1, 1, 1, 2, 2, 2, 3, 3, 3])]
    assert all(bytes(f[UDP].payload) == b"@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_" for f in probes)
    assert len({f[UDP].sport for f in probes}) == 9  # a socket per probe


# -- 2. a 60,000-byte datagram over a 576-byte link ---------------------------------------------

BIG = random.Random(2).randbytes(60_000)


async def _receiver(b: pystack.Host):
    srv = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await srv.bind(("0.0.0.0", PORT))
    return srv


def _hold_fragments(b: pystack.Host, order) -> list:
    """At b's PRE_ROUTING, keep every fragment until the last one has come, then let them
    all go on in `order(list)`'s order."""
    held: list = []

    def hook(skb, _state) -> int:
        off = skb.network_header
        frag = (skb.buf[off + 6] << 8) | skb.buf[off + 7]
        if not frag & 0x3FFF:
            return NF_ACCEPT  # not a fragment
        held.append(skb)
        if frag & 0x2000:  # more fragments follow
            return NF_STOLEN
        for f in order(list(held)):
            ip_rcv_finish(f)
        return NF_STOLEN

    nf_register_hook(b.net, NF_INET_PRE_ROUTING, hook)
    return held


async def test_a_60000_byte_datagram_crosses_a_576_byte_link_whole() -> None:
    async with three_subnets(last_mtu=576) as (net, a, r1, r2, b):
        srv = await _receiver(b)
        cli = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await cli.sendto(BIG, (B, PORT))
        with trio.fail_after(5):
            data, peer = await srv.recvfrom(65536)
        assert data == BIG and peer[0] == A
        # a cut the 60,008 UDP bytes for 1500 (40 pieces of 1480 and one of 808); r2 cut each
        # again for 576: 1480 = 552 + 552 + 376, 808 = 552 + 256
        assert a.stats()["Ip"]["FragCreates"] == 41
        assert r2.stats()["Ip"]["FragOKs"] == 41
        assert r2.stats()["Ip"]["FragCreates"] == 40 * 3 + 2
        assert b.stats()["Ip"]["ReasmReqds"] == 122
        assert b.stats()["Ip"]["ReasmOKs"] == 1


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
async def test_fragments_in_reverse_or_shuffled_order_reassemble(order: str) -> None:
    async with three_subnets(last_mtu=576) as (net, a, r1, r2, b):
        srv = await _receiver(b)
        rng = random.Random(9)
        reorder = ((lambda fs: fs[::-1]) if order == "reversed"
                   else (lambda fs: rng.sample(fs, len(fs))))
        held = _hold_fragments(b, reorder)
        cli = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await cli.sendto(BIG, (B, PORT))
        with trio.fail_after(5):
            data, _ = await srv.recvfrom(65536)
        assert data == BIG
        assert len(held) == 122
        assert b.stats()["Ip"]["ReasmOKs"] == 1 and b.drops() == {}


async def test_a_lost_fragment_loses_the_datagram_and_the_sender_hears_after_30_s() -> None:
    async with three_subnets(last_mtu=576) as (net, a, r1, r2, b):
        srv = await _receiver(b)
        seen = []

        def drop_the_tenth(skb, _state) -> int:
            off = skb.network_header
            if skb.buf[off + 9] == 17 and skb.buf[off + 6] & 0x3F | skb.buf[off + 7]:
                seen.append(skb)
                if len(seen) == 10:
                    return NF_DROP
            return NF_ACCEPT

        nf_register_hook(b.net, NF_INET_PRE_ROUTING, drop_the_tenth)
        cli = recverr_socket(a)
        await cli.sendto(BIG, (B, PORT))
        await trio.sleep(29.5)
        assert not srv.is_readable()
        assert a.stats()["Icmp"]["InTimeExcds"] == 0
        await trio.sleep(1)
        assert not srv.is_readable()
        assert b.stats()["Ip"]["ReasmTimeout"] == 1 and b.stats()["Ip"]["ReasmOKs"] == 0
        assert b.drops()["FRAG_REASM_TIMEOUT"] == 121  # all the fragments that came
        assert a.stats()["Icmp"]["InTimeExcds"] == 1
        data, addr, ee = await read_error(cli)
        assert addr == (B, PORT)
        assert (ee.ee_type, ee.ee_code, ee.offender) == (
            11, 1, int.from_bytes(socket.inet_aton(B), "big"))  # fragment reassembly
        assert data == BIG[:len(data)] and len(data) > 0  # the quoted start of the payload


# -- 3. a fragment flood -------------------------------------------------------------------------

def _fragment_frame(r1: pystack.Host, ident: int, offset: int, size: int, more: bool,
                    src: str = "10.0.1.66") -> bytes:
    """A fragment from a (forged) host on a's subnet to b, as it reaches r1's eth0."""
    r1_mac = r1.interface("eth0").dev_addr.hex(":")
    pkt = (Ether(dst=r1_mac, src="02:00:00:00:00:66")
           / IP(src=src, dst=B, id=ident, proto=17, flags="MF" if more else 0,
                frag=offset // 8, ttl=64) / (bytes([ident & 0xFF]) * size))
    return bytes(pkt)


async def test_a_flood_of_unfinished_datagrams_stays_under_ipfrag_high_thresh() -> None:
    async with three_subnets() as (net, a, r1, r2, b):
        await a.ping(B)  # neighbours resolved along the path
        forwarded = r1.stats()["Ip"]["ForwDatagrams"]
        thresh = b.sysctl.ipfrag_high_thresh
        assert thresh == 4 * 1024 * 1024
        frags = b.net.ipv4.frags
        eth0 = r1.interface("eth0")
        most = 0
        for ident in range(3000):  # first fragments only: none can ever complete
            eth0.dma_rx(bytearray(_fragment_frame(r1, ident, 0, 1400, True)))
            if ident % 100 == 99:
                await trio.sleep(0.001)
                most = max(most, frags.mem)
        await trio.sleep(0.01)
        held = len(frags.queues)
        assert frags.mem <= thresh and most <= thresh
        assert 1000 < held < 3000
        ip = b.stats()["Ip"]
        assert ip["ReasmReqds"] == 3000
        assert ip["ReasmFails"] == 3000 - held
        assert b.drops() == {"PROTO_MEM": 3000 - held}
        # routers pass fragments on as they are
        assert r1.stats()["Ip"]["ForwDatagrams"] - forwarded == 3000
        await trio.sleep(31)
        assert frags.mem == 0 and not frags.queues
        assert b.stats()["Ip"]["ReasmTimeout"] == held
        assert await a.ping(B) >= 0  # and b still answers


async def test_overlapping_fragments_are_dropped_and_counted() -> None:
    async with three_subnets() as (net, a, r1, r2, b):
        await a.ping(B)
        srv = await _receiver(b)
        eth0 = r1.interface("eth0")
        for ident in range(50):
            # 0-1399 and the last piece, 2000-2599; then one at 1000 reaching into the first
            for offset, size, more in ((0, 1400, True), (2000, 600, False), (1000, 800, True)):
                eth0.dma_rx(bytearray(_fragment_frame(r1, ident, offset, size, more)))
        await trio.sleep(0.1)
        assert b.stats()["IpExt"]["ReasmOverlaps"] == 50
        assert b.stats()["Ip"]["ReasmOKs"] == 0
        assert not b.net.ipv4.frags.queues
        assert not srv.is_readable()
        assert await a.ping(B) >= 0


# -- 4. path MTU discovery through a 1280-byte link --------------------------------------------

async def test_tcp_learns_the_path_mtu_and_the_route_cache_shows_it(tmp_path) -> None:
    path = tmp_path / "pmtu.pcapng"
    async with three_subnets(middle_mtu=1280) as (net, a, r1, r2, b):
        cap = net.capture(str(path))
        data = random.Random(4).randbytes(200_000)
        info: list = []
        assert await tcp_transfer(a, b, data, info) == data
        cap.close()
        # struct tcp_info: tcpi_snd_mss at byte 16, tcpi_pmtu at 60. The MSS fits 1280 bytes
        # less the IP and TCP headers and the timestamp option: 1280 - 20 - 20 - 12.
        snd_mss, pmtu = struct.unpack_from("=I", info[0], 16)[0], struct.unpack_from(
            "=I", info[0], 60)[0]
        assert (snd_mss, pmtu) == (1228, 1280)
        await trio.sleep(0.5)
        assert r1.stats()["Ip"]["FragFails"] >= 1
        assert r1.stats()["Icmp"]["OutDestUnreachs"] >= 1
        learned = trio.current_time()
        cache = a.routes("cache")
        assert str(cache) == f"{B} via {R1_A} dev eth0\n    cache expires 599sec mtu 1280"
        got = a.route_get(B)
        assert got.mtu == 1280
        assert str(got) == (f"{B} via {R1_A} dev eth0 src {A} uid 0\n"
                            f"    cache expires 599sec mtu 1280")
        assert str(a.route_get(R1_A)) == f"{R1_A} dev eth0 src {A} uid 0\n    cache"
        await trio.sleep(600 - (trio.current_time() - learned) + 1)
        assert str(a.routes("cache")) == ""  # expired (ip_rt_mtu_expires)
        assert a.route_get(B).mtu is None
    frames = [(p.interface_name, Ether(p.data)) for p in read_pcapng(path)]
    too_big = [f for name, f in frames if name == "a:eth0" and ICMP in f]
    assert too_big, "no fragmentation-needed reached a"
    first = too_big[0]
    assert (first[IP].src, first[ICMP].type, first[ICMP].code, first[ICMP].nexthopmtu) == (
        R1_A, 3, 4, 1280)
    assert first[IPerror].flags.DF and first[IPerror].len == 1500
    sent = [f for name, f in frames if name == "a:eth0" and f[Ether].src == a.interface(
        "eth0").dev_addr.hex(":") and IP in f and f[IP].proto == 6]
    assert max(len(f[IP]) for f in sent) == 1500  # before it learned
    assert len(sent[-2][IP]) <= 1280
    on_middle = [f for name, f in frames if name == "r1:eth1" and IP in f and f[IP].proto == 6]
    assert on_middle and max(len(f[IP]) for f in on_middle) <= 1280
    assert all(f[IP].flags.DF for f in on_middle)


async def test_a_route_change_drops_what_was_learned_through_the_old_route() -> None:
    async with three_subnets(middle_mtu=1280) as (net, a, r1, r2, b):
        data = random.Random(4).randbytes(50_000)
        assert await tcp_transfer(a, b, data) == data
        assert a.route_get(B).mtu == 1280
        a.add_route("10.0.3.0/24", via=R1_A)  # a new, more specific route: not learned on
        assert a.route_get(B).mtu is None
        a.del_route("10.0.3.0/24", via=R1_A)
        assert a.route_get(B).mtu == 1280  # the default route still has it
        a.del_route("default", via=R1_A)
        a.add_route("default", via=R1_A)
        assert a.route_get(B).mtu is None and str(a.routes("cache")) == ""


# -- 5. no route, and a silent gateway ------------------------------------------------------------

async def test_without_a_route_connect_and_sendto_raise_enetunreach() -> None:
    async with three_subnets() as (net, a, r1, r2, b):
        a.del_route("default", via=R1_A)
        tcp = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(OSError) as e:
            await tcp.connect((B, PORT))
        assert e.value.errno == errno.ENETUNREACH
        udp = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(OSError) as e:
            await udp.sendto(b"x", (B, PORT))
        assert e.value.errno == errno.ENETUNREACH
        with pytest.raises(OSError) as e:
            a.route_get(B)
        assert e.value.errno == errno.ENETUNREACH
        with pytest.raises(OSError) as e:
            await a.traceroute(B)
        assert e.value.errno == errno.ENETUNREACH
        assert a.stats()["Ip"]["OutNoRoutes"] >= 3


async def test_a_gateway_that_does_not_answer_arp_ends_in_ehostunreach() -> None:
    async with three_subnets() as (net, a, r1, r2, b):
        a.add_route("192.0.2.0/24", via="10.0.1.99")  # nobody has this address
        tcp = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        start = trio.current_time()
        with trio.fail_after(60), pytest.raises(OSError) as e:
            await tcp.connect(("192.0.2.1", PORT))
        assert e.value.errno == errno.EHOSTUNREACH
        assert trio.current_time() - start == pytest.approx(3.0)  # three ARP solicits
        assert a.neighbour_state("10.0.1.99") == "FAILED"
        with pytest.raises(OSError) as e:
            await a.ping("192.0.2.1")
        assert e.value.errno == errno.EHOSTUNREACH
        tr = await a.traceroute("192.0.2.1")
        assert len(tr) == 1
        assert [(p.address, p.annotation) for p in tr[0].probes] == [(A, "!H")] * 3
        assert str(tr).splitlines()[1].endswith(" ms !H")


async def test_udp_with_pmtudisc_do_learns_the_path_mtu_from_the_router() -> None:
    async with three_subnets(middle_mtu=1280) as (net, a, r1, r2, b):
        connected = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await connected.connect((B, PORT))
        assert connected.getsockopt(socket.IPPROTO_IP, 14) == 1500  # IP_MTU: its route's
        s = recverr_socket(a)
        s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER, IP_PMTUDISC_DO
        await s.sendto(b"d" * 1400, (B, PORT))  # fits a's link, not r1's next one
        await trio.sleep(0.1)
        data, addr, ee = await read_error(s)
        assert addr == (B, PORT) and data == b"d" * len(data)
        assert (ee.ee_errno, ee.ee_origin, ee.ee_type, ee.ee_code, ee.ee_info) == (
            errno.EMSGSIZE, SO_EE_ORIGIN_ICMP, 3, 4, 1280)
        assert ee.offender == int.from_bytes(socket.inet_aton(R1_A), "big")
        assert a.route_get(B).mtu == 1280
        assert connected.getsockopt(socket.IPPROTO_IP, 14) == 1280  # its dst learned too
        # now the sender knows: the next one fails at once, with a local record
        s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        with pytest.raises(OSError) as e:
            await s.sendto(b"d" * 1400, (B, PORT))
        assert e.value.errno == errno.EMSGSIZE
        _data, _addr, ee = await read_error(s)
        assert (ee.ee_origin, ee.ee_info, ee.offender) == (1, 1280, None)  # SO_EE_ORIGIN_LOCAL
        await s.sendto(b"d" * (1280 - 28), (B, PORT))  # what fits goes
        assert r1.stats()["Icmp"]["OutDestUnreachs"] == 1


async def test_a_silent_hop_shows_as_stars() -> None:
    async with three_subnets() as (net, a, r1, r2, b):
        def no_time_exceeded(skb, _state) -> int:
            off = skb.network_header
            is_icmp = skb.buf[off + 9] == 1
            return NF_DROP if is_icmp and skb.buf[off + 20] == 11 else NF_ACCEPT

        nf_register_hook(r2.net, NF_INET_LOCAL_OUT, no_time_exceeded)
        start = trio.current_time()
        tr = await a.traceroute(B, wait=2.0)
        assert [hop.address for hop in tr] == [R1_A, None, B]
        assert str(tr).splitlines()[2] == " 2  * * *"
        assert trio.current_time() - start == pytest.approx(6.0)  # three probes waited 2 s


async def test_traceroute_checks_its_arguments() -> None:
    async with three_subnets() as (net, a, r1, r2, b):
        with pytest.raises(ValueError, match="first_ttl"):
            await a.traceroute(B, first_ttl=5, max_hops=4)
        with pytest.raises(ValueError, match="packetlen"):
            await a.traceroute(B, packetlen=20)
        with pytest.raises(socket.gaierror):
            await a.traceroute("nowhere")
        tr = await a.traceroute(B, first_ttl=2, queries=1, packetlen=100)
        assert [(hop.ttl, hop.address) for hop in tr] == [(2, R2_B), (3, B)]
        assert str(tr).splitlines()[0].endswith("30 hops max, 100 byte packets")


async def test_after_mtu_expires_a_connection_tries_the_bigger_mtu_and_learns_again() -> None:
    # RFC 1191 §6.3: a learned PMTU ages out; the sender tries its first-hop MTU again.
    async with three_subnets(middle_mtu=1280) as (net, a, r1, r2, b):
        srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        await srv.bind(("0.0.0.0", PORT))
        srv.listen(1)
        cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        await cli.connect((B, PORT))
        conn, _ = await srv.accept()
        told = []
        for n in range(2):
            data = bytes([n]) * 100_000
            got = b""
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cli.send, data)
                while len(got) < len(data):
                    got += await conn.recv(65536)
            assert got == data
            assert a.route_get(B).mtu == 1280
            told.append(r1.stats()["Icmp"]["OutDestUnreachs"])
            await trio.sleep(601)
            assert a.route_get(B).mtu is None
        assert 0 < told[0] < told[1]  # fragmentation-needed again in the second round


async def test_a_path_narrower_than_min_pmtu_is_locked_and_routers_fragment() -> None:
    # __ip_rt_update_pmtu: below net.ipv4.route.min_pmtu the MTU is held at 552 and locked;
    # ip_dont_fragment: a locked MTU clears DF, so r1 may fragment for the 400-byte link.
    async with three_subnets(middle_mtu=400) as (net, a, r1, r2, b):
        data = random.Random(5).randbytes(30_000)
        assert await tcp_transfer(a, b, data) == data
        cached = a.route_get(B)
        assert (cached.mtu, cached.mtu_locked) == (552, True) and 590 < cached.expires <= 600
        assert str(cached).endswith(f"cache expires {cached.expires}sec mtu lock 552")
        assert r1.stats()["Ip"]["FragOKs"] > 0 and r1.stats()["Ip"]["FragCreates"] > 0
        assert b.stats()["Ip"]["ReasmOKs"] == r1.stats()["Ip"]["FragOKs"]
