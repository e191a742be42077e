"""TCP's hash tables (pystack/net/ipv4/inet_hashtables.py) on the receive path (issue 3,
point 6): a segment for an established connection is found with one probe of the
established hash (__inet_lookup_established), whatever the number of sockets; the listener
table is only consulted when that probe misses (__inet_lookup_listener), and no lookup walks
the sockets.

Spies replace the host's tables in place: `ehash` by a dict that counts its probes and fails
the test if anything iterates it while segments are received; `lookup_listener` by a counting
wrapper. Counting, not timing: the cost of a lookup is asserted as a number of probes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from typing import AsyncIterator

import trio

import pystack
import pystack.net
from pystack.uapi.ip import ip_int

from nethelpers import python_only, sk_of

spies_on_tables = python_only("spies on the hash tables by replacing their methods")

AF_INET, SOCK_STREAM = socket.AF_INET, socket.SOCK_STREAM
PORT = 5000
NET_DIR = os.path.dirname(pystack.net.__file__)


class ProbeCountingDict(dict):
    """A dict that counts key probes and refuses to be walked while `walk_forbidden`."""

    def __init__(self, *args):
        super().__init__(*args)
        self.probes = 0
        self.walk_forbidden = False

    def _probe(self):
        self.probes += 1

    def get(self, key, default=None):
        self._probe()
        return super().get(key, default)

    def __getitem__(self, key):
        self._probe()
        return super().__getitem__(key)

    def __contains__(self, key):
        self._probe()
        return super().__contains__(key)

    def _walk(self):
        assert not self.walk_forbidden, "the established hash was walked on the receive path"

    def __iter__(self):
        self._walk()
        return super().__iter__()

    def values(self):
        self._walk()
        return super().values()

    def items(self):
        self._walk()
        return super().items()

    def keys(self):
        self._walk()
        return super().keys()


def spy(host: pystack.Host) -> tuple[ProbeCountingDict, list]:
    """Install the spies on `host`'s TCP tables; returns (ehash spy, listener-lookup calls)."""
    hashinfo = host.net.ipv4.tcp.hashinfo
    ehash = ProbeCountingDict(hashinfo.ehash)
    hashinfo.ehash = ehash
    calls: list = []
    real = hashinfo.lookup_listener

    def lookup_listener(*args):
        calls.append(args)
        return real(*args)
    hashinfo.lookup_listener = lookup_listener
    return ehash, calls


@contextlib.asynccontextmanager
async def connections(n: int, seed: int = 7) -> AsyncIterator[tuple]:
    """n connections from a (10.0.0.1) to b (10.0.0.2):5000."""
    net = pystack.Network(seed=seed)
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24")
    async with net:
        ls = b.socket(AF_INET, SOCK_STREAM)
        await ls.bind(("", PORT))
        ls.listen(n)
        pairs = []
        with trio.fail_after(60):
            for _ in range(n):
                c = a.socket(AF_INET, SOCK_STREAM)
                await c.connect(("10.0.0.2", PORT))
                conn, _ = await ls.accept()
                pairs.append((c, conn))
        yield net, a, b, ls, pairs


async def test_the_established_hash_holds_one_entry_per_connection():
    n = 100
    async with connections(n) as (net, a, b, ls, pairs):
        eb = b.net.ipv4.tcp.hashinfo.ehash
        ea = a.net.ipv4.tcp.hashinfo.ehash
        assert len(eb) == len(ea) == n
        for c, conn in pairs:
            # Keyed by the 4-tuple as the receiver sees it: (local addr, local port,
            # remote addr, remote port).
            port = c.getsockname()[1]
            assert eb[(ip_int("10.0.0.2"), PORT, ip_int("10.0.0.1"), port)] is sk_of(conn)
            assert ea[(ip_int("10.0.0.1"), port, ip_int("10.0.0.2"), PORT)] is sk_of(c)
        # The listener is not in the established hash; it is in the listening hash.
        assert [sk for sks in b.net.ipv4.tcp.hashinfo.lhash.values() for sk in sks] == [
            sk_of(ls)]


async def _probes_per_segment(n: int) -> tuple[int, int, int]:
    """Send one data segment on the last of n connections and its ACK back: (ehash probes on
    the receiver, on the sender, listener lookups on both)."""
    async with connections(n) as (net, a, b, ls, pairs):
        c, conn = pairs[-1]
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        eb, lb = spy(b)
        ea, la = spy(a)
        eb.walk_forbidden = ea.walk_forbidden = True
        await c.send(b"x")
        with trio.fail_after(5):
            assert await conn.recv(10) == b"x"
        await trio.sleep(1)  # the (delayed) ACK has come back
        eb.walk_forbidden = ea.walk_forbidden = False
        return eb.probes, ea.probes, len(lb) + len(la)


@spies_on_tables
async def test_a_segment_of_an_established_connection_costs_one_hash_probe():
    for n in (1, 200):
        at_b, at_a, listener_lookups = await _probes_per_segment(n)
        # One segment in each direction: the data at b, its ACK at a; one probe each.
        assert (at_b, at_a, listener_lookups) == (1, 1, 0), n


async def lines_run_for_one_segment(n: int) -> int:
    """The lines of pystack/net/ (the protocol code: not the scheduler's loops, not trio's)
    executed while one data segment and its ACK are processed, with n connections open."""
    async with connections(n) as (net, a, b, ls, pairs):
        c, conn = pairs[-1]
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        count = 0

        def tracer(frame, event, arg):
            if not frame.f_code.co_filename.startswith(NET_DIR):
                return None

            def local(frame, event, arg):
                nonlocal count
                if event == "line":
                    count += 1
                return local
            return local(frame, event, arg)
        sys.settrace(tracer)
        try:
            await c.send(b"y")
            with trio.fail_after(5):
                await conn.recv(10)
            await trio.sleep(1)
        finally:
            sys.settrace(None)
        return count


@spies_on_tables
async def test_the_receive_path_does_the_same_work_with_1_or_300_connections():
    """A scan of the sockets would run its loop once per socket; a dict probe does not: the
    number of lines executed does not depend on the number of connections."""
    one = await lines_run_for_one_segment(1)
    assert one > 100  # the trace sees the stack's work
    assert await lines_run_for_one_segment(300) == one


@spies_on_tables
async def test_a_syn_is_looked_up_in_the_established_hash_then_the_listener_table():
    async with connections(1) as (net, a, b, ls, pairs):
        eb, lb = spy(b)
        c = a.socket(AF_INET, SOCK_STREAM)
        with trio.fail_after(5):
            await c.connect(("10.0.0.2", PORT))
        # The SYN misses the established hash and finds the listener; the handshake's last
        # ACK finds the request sock in the established hash (as a TCP_NEW_SYN_RECV sock).
        assert len(lb) == 1
        assert lb[0][:2] == (ip_int("10.0.0.2"), PORT)
        assert eb.probes >= 2


async def test_time_wait_sockets_are_found_in_the_established_hash():
    async with connections(1) as (net, a, b, ls, pairs):
        c, conn = pairs[0]
        c.close()  # a closes first and ends in TIME_WAIT
        with trio.fail_after(5):
            assert await conn.recv(10) == b""
        conn.close()
        await trio.sleep(1)
        ea = a.net.ipv4.tcp.hashinfo.ehash
        assert [type(sk).__name__ for sk in ea.values()] == ["TimeWaitSock"]
