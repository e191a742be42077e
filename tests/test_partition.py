"""Partitions and hold/release (pystack/world.py: `Network.partition`, `Network.heal`,
`Link.hold`, `Link.release`), and what TCP makes of them.

Read first: the docstring of pystack/world.py; DESIGN.md §7.
"""

from __future__ import annotations

import socket

import pytest
import trio

import pystack

from nethelpers import connected_pair


def lan(net: pystack.Network, names: str = "abc"):
    sw = net.add_switch("sw0")
    hosts = [net.add_host(n) for n in names]
    links = [net.add_link(h, sw, subnet="10.0.0.0/24") for h in hosts]
    for link in links:
        link.set(delay=0.001)
    return hosts, links


async def pings(host, addr: str) -> bool:
    try:
        await host.ping(addr, timeout=1.0)
        return True
    except TimeoutError:
        return False


async def test_partition_cuts_both_ways_and_heal_restores() -> None:
    net = pystack.Network(seed=3)
    async with net:
        (a, b, c), _ = lan(net)
        assert await pings(a, "10.0.0.2")
        net.partition(a, b)
        assert net.partitioned(a, b) and net.partitioned(b, a)
        assert not await pings(a, "10.0.0.2")
        assert not await pings(b, "10.0.0.1")
        assert await pings(a, "10.0.0.3") and await pings(b, "10.0.0.3")  # c is on both sides
        assert net.partition_drops >= 2
        net.heal(a, b)
        assert await pings(a, "10.0.0.2")


async def test_one_way_partition_lets_the_other_direction_through() -> None:
    net = pystack.Network(seed=3)
    async with net:
        (a, b, _c), (la, lb, _lc) = lan(net)
        await a.ping("10.0.0.2")
        net.partition(a, b, oneway=True)
        rx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await rx.bind(("0.0.0.0", 9))
        tx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await tx.sendto(b"b to a", ("10.0.0.1", 9))
        assert (await rx.recvfrom(100))[0] == b"b to a"
        assert not await pings(a, "10.0.0.2")  # the request never reaches b
        assert lb.a.cut_frames == 1 and la.a.cut_frames == 0  # dropped at b's NIC


async def test_partition_between_groups() -> None:
    net = pystack.Network(seed=3)
    async with net:
        (a, b, c, d), _ = lan(net, "abcd")
        net.partition([a, b], ["c", "d"])
        assert await pings(a, "10.0.0.2")
        assert not await pings(a, "10.0.0.3") and not await pings(b, "10.0.0.4")
        net.heal()
        assert await pings(d, "10.0.0.1")
        with pytest.raises(ValueError):
            net.partition(a, "nosuch")
        with pytest.raises(ValueError):
            net.partition([a, b], [b])


async def test_tcp_transfer_survives_a_one_way_partition_with_backoff() -> None:
    net = pystack.Network(seed=5)
    async with net:
        (a, b), _ = lan(net, "ab")
        cli, conn = await connected_pair(a, b, "10.0.0.2")
        retransmits: list[float] = []
        net.trace(lambda ev: retransmits.append(ev.time), match="tcp:tcp_retransmit_skb")
        data = bytes(range(256)) * 800  # 200 KiB
        got = bytearray()

        async def reader() -> None:
            while len(got) < len(data):
                chunk = await conn.recv(65536)
                assert chunk
                got.extend(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await cli.send(data[:50000])
            await trio.sleep(0.5)
            net.partition(a, b, oneway=True)  # a's segments no longer reach b
            cut_at = trio.current_time()
            nursery.start_soon(cli.send, data[50000:])  # blocking send: all of it
            await trio.sleep(20)
            assert len(got) < len(data)
            net.heal()
        assert bytes(got) == data
        during = [t - cut_at for t in retransmits if t - cut_at < 20]
        print("retransmits after the cut (s):", [round(t, 3) for t in during])
        assert len(during) >= 4
        gaps = [y - x for x, y in zip(during, during[1:])]
        assert all(y > 1.5 * x for x, y in zip(gaps, gaps[1:]))  # exponential backoff
        assert a.stats()["Tcp"]["RetransSegs"] >= len(during)


async def test_hold_keeps_frames_and_release_delivers_them_in_order() -> None:
    net = pystack.Network(seed=3)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        link = net.add_link(a, b, subnet="10.0.0.0/24")
        link.set(delay=0.002)
        await a.ping("10.0.0.2")
        await trio.sleep(6)  # neighbour entries settle
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await rx.bind(("0.0.0.0", 9))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await tx.sendto(b"0", ("10.0.0.2", 9))
        link.hold()  # frame 0 is on the wire: held too
        for i in range(1, 5):
            await tx.sendto(str(i).encode(), ("10.0.0.2", 9))
        await trio.sleep(10)
        with trio.move_on_after(0.1) as cs:
            await rx.recvfrom(100)
        assert cs.cancelled_caught  # nothing arrived while held
        released_at = trio.current_time()
        assert link.release() == 5
        got = [(await rx.recvfrom(100))[0] for _ in range(5)]
        assert got == [b"0", b"1", b"2", b"3", b"4"]
        assert trio.current_time() == released_at
        assert link.release() == 0
