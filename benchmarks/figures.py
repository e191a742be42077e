"""The pystack side of each figure, and the list of figures (`FIGURES`) with their plans.

Every function here builds its own world through the public API only (DESIGN.md §1):
``pystack.Network(seed=1)``, ``async with net``, ``net.add_host``, ``net.add_switch``,
``net.add_link(host, switch, subnet=...)``, ``host.socket(family, type)`` with trio's socket
interface. Each repetition is one ``trio.run`` under ``MockClock(autojump_threshold=0)``
(`harness.run_virtual`): virtual time for the stack, wall time (``time.perf_counter``) for
the measurement, which covers only the steady-state loop, never the setup.

What each figure measures (the anchor is in `benchmarks.anchors`):

``tcp_echo_lo``        4-byte messages echoed over host a's loopback, one at a time: round
                       trips/s. Anchor: kernel loopback through trio. Target ≥ 0.5×.
``tcp_bulk_lo``        64 MiB written in 64 KiB ``send`` calls over loopback and read by a
                       second task: MB/s. Anchor: ``memory_stream_pair``. Target ≥ 1.0×.
``tcp_bulk_eth``       the same from host a (10.0.0.1) to host b (10.0.0.2), both linked to
                       switch sw0 (Ethernet, MTU 1500). Anchor: ``memory_stream_pair``.
                       Target ≥ 0.3×.
``udp_pairs``          one 64-byte ``sendto`` then one ``recvfrom``, between two sockets on
                       host a's loopback: pairs/s. Anchor: trio's FakeNet. Target ≥ 1.0×.
``tcp_connect_close``  connect, server accepts and closes, client reads EOF and closes, over
                       loopback: connections/s. Anchor: kernel loopback through trio, shown
                       for reference; target ≥ 2,000/s absolute.
``tcp_idle_memory``    10,000 established loopback connections left idle: the growth of
                       Python's traced memory (``tracemalloc``), after a ``gc.collect()``,
                       divided by the number of connections — both ends of a connection
                       count, since both live in the emulated world. Target ≤ 20 KiB.
``keepalive_hour``     1,000 idle connections from host a to host b over the switch, each
                       client socket with SO_KEEPALIVE, TCP_KEEPIDLE 300 s and TCP_KEEPINTVL
                       75 s (12 probes an hour each); the wall time that one hour of virtual
                       time takes. If the wall budget runs out first, the time is
                       extrapolated to the hour (the note says so). Target ≤ 10 s.
``socket_scaling``     the ``udp_pairs`` loop with 10,000 other UDP sockets bound on the same
                       host, against the same loop with 10: µs per pair; pystack column =
                       10,000 sockets, anchor column = 10. Target ratio ≤ 1.2 (per-packet
                       work must be O(1) in the number of sockets).

``route_scaling``      64-byte ``sendto``s from host a to b's side of a link, each to a new
                       destination (8,192 of them in turn, so the route cache never answers
                       and every datagram makes a FIB lookup), with 10,000 extra routes in a's
                       table (random prefixes /16-/28 inside 172.16.0.0/12, seeded), against
                       the same loop with 10: µs per datagram; pystack column = 10,000 routes,
                       anchor column = 10. Target ratio ≤ 1.2 (the FIB must stay fast with
                       thousands of routes).

pystack enforces RLIMIT_NOFILE (1024 descriptors a process), as Linux does, so the figures
that hold thousands of sockets spread them over ``host.process()`` contexts of at most 1,000
descriptors each (`_FdBudget`), as a real program under the default ulimit would have to.

``--quick`` shrinks every size (and judges the targets on those small sizes: indicative only).
"""

from __future__ import annotations

import contextlib
import gc
import socket
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import attrs
import trio

from . import anchors
from .harness import Deadline, Measurement, Plan, Target, grace, rate, run_virtual

KiB = 1024
MiB = 1024 * KiB

SERVER_PORT = 8000


def _pystack() -> Any:
    """The package under test, imported at run time: it may not exist yet."""
    import pystack

    return pystack


def _world() -> Any:
    return _pystack().Network(seed=1)


def _best_effort_nodelay(sock: Any) -> None:
    # The kernel anchor's trio.SocketStream sets TCP_NODELAY; do the same when we can. In
    # virtual time Nagle would cost no wall time anyway, so a refusal is not an error.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, NotImplementedError, AttributeError):
        pass


async def _send_all(sock: Any, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = await sock.send(view)
        view = view[n:]


async def _recv_exactly(sock: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("peer closed the connection early")
        buf += chunk
    return bytes(buf)


async def _listener(host: Any, addr: str, port: int = SERVER_PORT, backlog: int = 1024) -> Any:
    lsk = host.socket(socket.AF_INET, socket.SOCK_STREAM)
    # accept() puts each new descriptor in the listener's own process, as a kernel does: give
    # that process room for every connection a figure keeps open (`ulimit -n`).
    lsk.task.files.nofile = 1 << 20
    await lsk.bind((addr, port))
    lsk.listen(backlog)
    return lsk


async def _connected_pair(client_host: Any, lsk: Any, addr: tuple[str, int]) -> tuple[Any, Any]:
    """A connected (client, server-side) pair of stream sockets."""
    c = client_host.socket(socket.AF_INET, socket.SOCK_STREAM)
    await c.connect(addr)
    s, _ = await lsk.accept()
    return c, s


def _two_hosts_on_a_switch(net: Any) -> tuple[Any, Any]:
    a = net.add_host("a")
    b = net.add_host("b")
    sw = net.add_switch("sw0")
    net.add_link(a, sw, subnet="10.0.0.0/24")  # a = 10.0.0.1
    net.add_link(b, sw, subnet="10.0.0.0/24")  # b = 10.0.0.2
    return a, b


class _FdBudget:
    """Hands out processes on a host so that none holds more than `PER_PROCESS` descriptors.

    pystack enforces RLIMIT_NOFILE (1024, descriptors 0-2 taken) per process, as Linux does,
    and a host's sockets made outside ``host.process()`` all belong to its init process.
    Figures that keep thousands of sockets open therefore enter a new ``host.process()``
    every `PER_PROCESS` descriptors, on an exit stack that keeps them all alive (a process
    closes its descriptors when it ends). A process context is per trio task: each task
    that makes or accepts sockets needs its own budget.
    """

    PER_PROCESS = 1000

    def __init__(self, host: Any, stack: contextlib.AsyncExitStack) -> None:
        self.host, self.stack = host, stack
        self.used = self.PER_PROCESS  # the first `need` enters a process
        self.processes = 0

    async def need(self, fds: int) -> None:
        """Make sure the current process has room for `fds` more descriptors."""
        if self.used + fds > self.PER_PROCESS:
            self.processes += 1
            await self.stack.enter_async_context(
                self.host.process(f"bench{self.processes}")
            )
            self.used = 0
        self.used += fds


# ---------------------------------------------------------------------------------------
# TCP echo


def tcp_echo_lo(*, round_trips: int, seconds: float, size: int = 4) -> Measurement:
    async def main() -> Measurement:
        async with _world() as net:
            a = net.add_host("a")
            lsk = await _listener(a, "127.0.0.1")
            c, s = await _connected_pair(a, lsk, ("127.0.0.1", SERVER_PORT))
            _best_effort_nodelay(c)
            _best_effort_nodelay(s)

            async def echo() -> None:
                while data := await s.recv(65536):
                    await _send_all(s, data)
                s.close()

            msg = b"x" * size
            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                done = 0
                deadline = Deadline(seconds)
                t0 = time.perf_counter()
                while done < round_trips and not deadline.expired():
                    await _send_all(c, msg)
                    if await _recv_exactly(c, size) != msg:
                        raise AssertionError("echo returned other bytes")
                    done += 1
                elapsed = time.perf_counter() - t0
                c.close()
            lsk.close()
        return rate(done, elapsed)

    return run_virtual(main, wall_limit=seconds + grace())


# ---------------------------------------------------------------------------------------
# TCP bulk


async def _bulk(
    sender: Any, receiver: Any, *, total: int, chunk: int, seconds: float
) -> Measurement:
    """Stream `total` bytes from `sender` to `receiver` in `chunk`-byte sends: MB/s."""
    data = memoryview(b"\x5a" * chunk)
    deadline = Deadline(seconds)
    received = 0

    async def write() -> None:
        sent = 0
        while sent < total and not deadline.expired():
            await _send_all(sender, data)
            sent += chunk
        sender.close()  # FIN after the queued data: the reader sees EOF

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        while data_in := await receiver.recv(65536):
            received += len(data_in)
    elapsed = time.perf_counter() - t0
    receiver.close()
    return rate(received / 1e6, elapsed)


def tcp_bulk_lo(*, total: int, chunk: int, seconds: float) -> Measurement:
    async def main() -> Measurement:
        async with _world() as net:
            a = net.add_host("a")
            lsk = await _listener(a, "127.0.0.1")
            c, s = await _connected_pair(a, lsk, ("127.0.0.1", SERVER_PORT))
            lsk.close()
            return await _bulk(c, s, total=total, chunk=chunk, seconds=seconds)

    return run_virtual(main, wall_limit=seconds + grace())


def tcp_bulk_eth(*, total: int, chunk: int, seconds: float) -> Measurement:
    async def main() -> Measurement:
        async with _world() as net:
            a, b = _two_hosts_on_a_switch(net)
            lsk = await _listener(b, "10.0.0.2")
            c, s = await _connected_pair(a, lsk, ("10.0.0.2", SERVER_PORT))
            lsk.close()
            return await _bulk(c, s, total=total, chunk=chunk, seconds=seconds)

    return run_virtual(main, wall_limit=seconds + grace())


# ---------------------------------------------------------------------------------------
# UDP pairs, and their cost against the number of open sockets


async def _udp_pairs(
    host: Any, *, pairs: int, seconds: float, size: int, budget: _FdBudget | None = None
) -> tuple[int, float]:
    if budget is not None:
        await budget.need(2)
    tx = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await tx.bind(("127.0.0.1", 9000))
    await rx.bind(("127.0.0.1", 9001))
    dest = ("127.0.0.1", 9001)
    msg = b"u" * size
    gc.collect()
    done = 0
    deadline = Deadline(seconds)
    t0 = time.perf_counter()
    while done < pairs and not deadline.expired():
        await tx.sendto(msg, dest)
        data, _ = await rx.recvfrom(2048)
        if len(data) != size:
            raise AssertionError("datagram of the wrong size")
        done += 1
    elapsed = time.perf_counter() - t0
    tx.close()
    rx.close()
    return done, elapsed


def udp_pairs(*, pairs: int, seconds: float, size: int = 64) -> Measurement:
    async def main() -> Measurement:
        async with _world() as net:
            a = net.add_host("a")
            done, elapsed = await _udp_pairs(a, pairs=pairs, seconds=seconds, size=size)
        return rate(done, elapsed)

    return run_virtual(main, wall_limit=seconds + grace())


def udp_pair_cost(*, sockets: int, pairs: int, seconds: float, size: int = 64) -> Measurement:
    """µs per UDP pair on a host that has `sockets` other UDP sockets bound."""

    async def main() -> Measurement:
        async with _world() as net, contextlib.AsyncExitStack() as stack:
            a = net.add_host("a")
            budget = _FdBudget(a, stack)
            others = []
            for i in range(sockets):
                await budget.need(1)
                s = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
                await s.bind(("127.0.0.1", 10000 + i))
                others.append(s)
            done, elapsed = await _udp_pairs(
                a, pairs=pairs, seconds=seconds, size=size, budget=budget
            )
        if not done:
            raise RuntimeError("the timed loop did no work")
        return Measurement(elapsed / done * 1e6)

    return run_virtual(main, wall_limit=seconds + grace() + sockets / 500)


# ---------------------------------------------------------------------------------------
# Route lookups against the size of the routing table


def route_lookup_cost(*, routes: int, datagrams: int, seconds: float) -> Measurement:
    """µs per datagram sent to an uncached destination with `routes` extra routes."""
    import ipaddress
    import random

    async def main() -> Measurement:
        async with _world() as net:
            a, b = net.add_host("a"), net.add_host("b")
            net.add_link(a, b, subnet="10.0.0.0/24")
            rng = random.Random(7)
            block = int(ipaddress.IPv4Address("172.16.0.0"))
            added = set()
            while len(added) < routes:
                plen = rng.randrange(16, 29)
                prefix = (block | rng.getrandbits(20) << 12) & (0xFFFFFFFF << (32 - plen))
                if (prefix, plen) not in added:
                    added.add((prefix, plen))
                    a.add_route(f"{ipaddress.IPv4Address(prefix)}/{plen}", via="10.0.0.2")
            a.add_route("default", via="10.0.0.2")
            dests = [str(ipaddress.IPv4Address(block | rng.getrandbits(20))) for _ in range(8192)]
            tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
            msg = b"r" * 64
            await tx.sendto(msg, (dests[0], 9))  # ARP for b, once
            await trio.sleep(1)
            gc.collect()
            done = 0
            deadline = Deadline(seconds)
            t0 = time.perf_counter()
            while done < datagrams and not deadline.expired():
                await tx.sendto(msg, (dests[done % len(dests)], 9))
                done += 1
            elapsed = time.perf_counter() - t0
            if b.stats()["Ip"]["InReceives"] < done:
                raise AssertionError("datagrams did not reach b")
        if not done:
            raise RuntimeError("the timed loop did no work")
        return Measurement(elapsed / done * 1e6)

    return run_virtual(main, wall_limit=seconds + grace() + routes / 2000)


# ---------------------------------------------------------------------------------------
# Connections


def tcp_connect_close(*, connections: int, seconds: float) -> Measurement:
    async def main() -> Measurement:
        async with _world() as net:
            a = net.add_host("a")
            lsk = await _listener(a, "127.0.0.1")

            async def close_at_once() -> None:
                while True:
                    s, _ = await lsk.accept()
                    s.close()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(close_at_once)
                done = 0
                deadline = Deadline(seconds)
                t0 = time.perf_counter()
                while done < connections and not deadline.expired():
                    c = a.socket(socket.AF_INET, socket.SOCK_STREAM)
                    await c.connect(("127.0.0.1", SERVER_PORT))
                    if await c.recv(1) != b"":
                        raise AssertionError("server sent data")
                    c.close()
                    done += 1
                elapsed = time.perf_counter() - t0
                nursery.cancel_scope.cancel()
            lsk.close()
        return rate(done, elapsed)

    return run_virtual(main, wall_limit=seconds + grace())


def tcp_idle_memory(*, connections: int, seconds: float) -> Measurement:
    """KiB of traced Python memory per idle established connection (both ends)."""

    async def main() -> Measurement:
        async with _world() as net, contextlib.AsyncExitStack() as stack:
            a = net.add_host("a")
            budget = _FdBudget(a, stack)
            lsk = await _listener(a, "127.0.0.1")
            # One connection before tracing, so first-use allocations (caches, the first
            # hash-table slots, interned names) are not charged to the measured ones.
            warm = await _connected_pair(a, lsk, ("127.0.0.1", SERVER_PORT))
            await trio.sleep(1)
            kept: list[tuple[Any, Any]] = []
            gc.collect()
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                deadline = Deadline(seconds)
                while len(kept) < connections and not deadline.expired():
                    await budget.need(2)  # both ends are made by this task, on host a
                    kept.append(await _connected_pair(a, lsk, ("127.0.0.1", SERVER_PORT)))
                await trio.sleep(1)  # delayed ACKs and other short timers settle: idle
                gc.collect()
                used = tracemalloc.get_traced_memory()[0] - base
            finally:
                tracemalloc.stop()
            n = len(kept)
            del warm  # kept alive until here; the processes' exit closes everything
        if not n:
            raise RuntimeError("no connection was opened")
        note = ""
        if n < connections:
            note = f"only {n:,} of {connections:,} connections opened in {seconds:g} s"
        return Measurement(used / n / KiB, note)

    return run_virtual(main, wall_limit=seconds + grace(), virtual_limit=36000)


def keepalive_hour(
    *, connections: int, seconds: float, virtual: float = 3600.0, setup_seconds: float = 60.0
) -> Measurement:
    """Wall seconds that `virtual` seconds of virtual time take with idle keepalive conns."""

    async def main() -> Measurement:
        async with _world() as net, contextlib.AsyncExitStack() as stack:
            a, b = _two_hosts_on_a_switch(net)
            lsk = await _listener(b, "10.0.0.2")
            addr = ("10.0.0.2", SERVER_PORT)
            clients: list[Any] = []
            servers: dict[Any, Any] = {}  # peer address -> accepted socket
            all_accepted = trio.Event()

            async def acceptor(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                # Its own task, so that its processes are host b's (see _FdBudget).
                async with contextlib.AsyncExitStack() as b_stack:
                    b_budget = _FdBudget(b, b_stack)
                    task_status.started()
                    while len(servers) < connections:
                        await b_budget.need(1)
                        s, peer = await lsk.accept()
                        servers[tuple(peer)] = s
                    all_accepted.set()
                    await trio.sleep_forever()

            nursery = await stack.enter_async_context(trio.open_nursery())
            await nursery.start(acceptor)
            a_budget = _FdBudget(a, stack)
            setup = Deadline(setup_seconds)
            while len(clients) < connections:
                if setup.expired():
                    raise TimeoutError(
                        f"only {len(clients):,} connections opened in {setup_seconds:g} s"
                    )
                await a_budget.need(1)
                c = a.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 300)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 75)
                await c.connect(addr)
                clients.append(c)
            await all_accepted.wait()
            await trio.sleep(1)
            gc.collect()
            deadline = Deadline(seconds)
            start_v = trio.current_time()
            t0 = time.perf_counter()
            step = 60.0
            while trio.current_time() - start_v < virtual and not deadline.expired():
                await trio.sleep(min(step, virtual - (trio.current_time() - start_v)))
            wall = time.perf_counter() - t0
            done_v = trio.current_time() - start_v
            # The connections must have survived the hour: keepalive answered, not killed.
            for c in clients[:: max(1, len(clients) // 10)]:
                s = servers[tuple(c.getsockname())]
                await _send_all(c, b"k")
                if await _recv_exactly(s, 1) != b"k":
                    raise AssertionError("a keepalive connection lost data")
            nursery.cancel_scope.cancel()
        if done_v >= virtual:
            return Measurement(wall)
        return Measurement(
            wall * virtual / max(done_v, 1e-9),
            f"extrapolated from {done_v:,.0f} s of virtual time in {wall:.1f} s wall",
        )

    return run_virtual(
        main,
        wall_limit=seconds + setup_seconds + grace(),
        virtual_limit=virtual + 3600,
    )


# ---------------------------------------------------------------------------------------
# The list of figures


@attrs.frozen
class Figure:
    name: str
    title: str
    unit: str
    pystack: Callable[..., Measurement]
    anchor: Callable[..., Measurement] | None
    target: Target
    full: Plan
    quick: Plan
    self_anchored: bool = False  # the anchor is pystack too (see harness.compare)


def _bulk_plans(seconds: float) -> tuple[Plan, Plan]:
    return (
        Plan(
            dict(total=64 * MiB, chunk=64 * KiB, seconds=seconds),
            reps=5,
            warmup=dict(total=16 * MiB, seconds=2.0),
        ),
        # Even in a quick run, warm up: the first megabytes through a fresh process run at
        # half speed (the heap grows), which would halve the anchor.
        Plan(
            dict(total=4 * MiB, chunk=64 * KiB, seconds=1.0),
            reps=1,
            warmup=dict(total=4 * MiB, seconds=0.5),
        ),
    )


def _scaling_figure(name: str, title: str, unit: str, fn: Callable[..., Measurement],
                    knob: str, *, full: dict[str, Any], warmup: dict[str, Any],
                    quick: dict[str, Any]) -> Figure:
    """A self-anchored figure: `fn` with a big `knob` against `fn` with 10 (µs per unit of
    work, target ratio ≤ 1.2: the per-packet cost must not grow with the knob)."""
    small = {knob: 10}
    return Figure(
        name, title, unit, fn, fn, Target("<=", 1.2, "ratio"),
        full=Plan(dict(full, seconds=1.5), reps=5, warmup=dict(warmup, seconds=0.3, **small),
                  anchor_kwargs=small),
        quick=Plan(dict(quick, seconds=0.3), reps=1, warmup=None, anchor_kwargs=small),
        self_anchored=True,
    )


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in [
        Figure(
            "tcp_echo_lo",
            "TCP echo, loopback, 4 B",
            "rt/s",
            tcp_echo_lo,
            anchors.kernel_tcp_echo,
            Target(">=", 0.5, "ratio"),
            full=Plan(
                dict(round_trips=30_000, seconds=1.0),
                reps=5,
                warmup=dict(round_trips=500, seconds=0.3),
            ),
            quick=Plan(dict(round_trips=2_000, seconds=0.3), reps=1, warmup=None),
        ),
        Figure(
            "tcp_bulk_lo",
            "TCP bulk, loopback, 64 KiB writes",
            "MB/s",
            tcp_bulk_lo,
            anchors.memory_stream_bulk,
            Target(">=", 1.0, "ratio"),
            *_bulk_plans(seconds=6.0),
        ),
        Figure(
            "tcp_bulk_eth",
            "TCP bulk, Ethernet MTU 1500 via switch",
            "MB/s",
            tcp_bulk_eth,
            anchors.memory_stream_bulk,
            Target(">=", 0.3, "ratio"),
            *_bulk_plans(seconds=8.0),
        ),
        Figure(
            "udp_pairs",
            "UDP send+recv pairs, 64 B",
            "pairs/s",
            udp_pairs,
            anchors.fakenet_udp_pairs,
            Target(">=", 1.0, "ratio"),
            full=Plan(
                dict(pairs=50_000, seconds=1.0),
                reps=5,
                warmup=dict(pairs=1_000, seconds=0.3),
            ),
            quick=Plan(dict(pairs=3_000, seconds=0.3), reps=1, warmup=None),
        ),
        Figure(
            "tcp_connect_close",
            "TCP connect+close, loopback",
            "conn/s",
            tcp_connect_close,
            anchors.kernel_tcp_connect_close,
            Target(">=", 2000, "value", "conn/s"),
            full=Plan(
                dict(connections=4_000, seconds=1.0),
                reps=5,
                warmup=dict(connections=200, seconds=0.3),
            ),
            quick=Plan(dict(connections=300, seconds=0.3), reps=1, warmup=None),
        ),
        Figure(
            "tcp_idle_memory",
            "memory per idle TCP conn (10,000)",
            "KiB",
            tcp_idle_memory,
            None,
            Target("<=", 20, "value", "KiB"),
            full=Plan(dict(connections=10_000, seconds=60.0), reps=1, warmup=None),
            quick=Plan(dict(connections=500, seconds=5.0), reps=1, warmup=None),
        ),
        Figure(
            "keepalive_hour",
            "1 h virtual, 1,000 keepalive conns",
            "s wall",
            keepalive_hour,
            None,
            Target("<=", 10, "value", "s"),
            full=Plan(
                dict(connections=1_000, seconds=30.0, setup_seconds=30.0), reps=1, warmup=None
            ),
            quick=Plan(
                dict(connections=100, seconds=3.0, setup_seconds=5.0), reps=1, warmup=None
            ),
        ),
        _scaling_figure(
            "socket_scaling", "per-packet cost, 10,000 vs 10 sockets", "µs/pair", udp_pair_cost,
            "sockets", full=dict(sockets=10_000, pairs=30_000), warmup=dict(pairs=1_000),
            quick=dict(sockets=1_000, pairs=2_000),
        ),
        _scaling_figure(
            "route_scaling", "per-datagram cost, 10,000 vs 10 routes", "µs/dgram",
            route_lookup_cost, "routes", full=dict(routes=10_000, datagrams=30_000),
            warmup=dict(datagrams=1_000), quick=dict(routes=10_000, datagrams=3_000),
        ),
    ]
}
