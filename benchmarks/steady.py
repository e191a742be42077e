"""``python -m benchmarks.steady LOOP [--n N] [--rounds R] [--calls | --bytecodes]``.

The small-message loops alone, without their setup: what a change on the per-packet path
moves. LOOP is one of

* ``udp``: a 64-byte ``sendto`` then ``recvfrom`` between two sockets on 127.0.0.1
  (the ``udp_pairs`` row);
* ``fakenet``: the same loop through trio's FakeNet (its anchor);
* ``echo``: a 4-byte TCP echo round trip over loopback (``tcp_echo_lo``);
* ``connect_close``: connect, accept and close over loopback (``tcp_connect_close``, whose
  client also waits for the server's FIN before it closes).

After a warm-up of 200 operations it prints, per operation, one of:

* CPU time (``time.thread_time``), the minimum of R rounds of N operations, and every round;
* ``--calls``: function calls (cProfile's count, builtins included);
* ``--bytecodes``: bytecode instructions executed (a trace function with
  ``f_trace_opcodes``), the total and the 25 functions that execute most. A count, not a
  time: it does not move with the machine's load, so it resolves changes of 1% that CPU
  time cannot on a shared machine. What costs is roughly proportional to it.

To compare two trees, run the same command from each (``PYTHONPATH=TREE``), alternating.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import pstats
import socket
import sys
import time
from typing import Any, Awaitable, Callable

import trio
import trio.testing

from . import figures

Loop = Callable[[int], Awaitable[None]]


async def _udp(sockets: Callable[[], Any]) -> Loop:
    tx, rx = sockets(), sockets()
    await tx.bind(("127.0.0.1", 9000))
    await rx.bind(("127.0.0.1", 9001))
    dest, msg = ("127.0.0.1", 9001), b"u" * 64

    async def loop(n: int) -> None:
        for _ in range(n):
            await tx.sendto(msg, dest)
            await rx.recvfrom(2048)
    return loop


async def _echo(host: Any, nursery: trio.Nursery) -> Loop:
    # The tcp_echo_lo row's connection (figures.py), with its loop below.
    lsk = await figures._listener(host, "127.0.0.1")
    c, s = await figures._connected_pair(host, lsk, ("127.0.0.1", figures.SERVER_PORT))
    figures._best_effort_nodelay(c)
    figures._best_effort_nodelay(s)

    async def server() -> None:
        while data := await s.recv(65536):
            await s.send(data)
    nursery.start_soon(server)

    async def loop(n: int) -> None:
        for _ in range(n):
            await c.send(b"xxxx")
            got = b""
            while len(got) < 4:
                got += await c.recv(4 - len(got))
    return loop


async def _connect_close(host: Any, nursery: trio.Nursery) -> Loop:
    lsk = await figures._listener(host, "127.0.0.1")

    async def server() -> None:
        while True:
            s, _ = await lsk.accept()
            s.close()
    nursery.start_soon(server)

    async def loop(n: int) -> None:
        for _ in range(n):
            c = host.socket(socket.AF_INET, socket.SOCK_STREAM)
            await c.connect(("127.0.0.1", figures.SERVER_PORT))
            c.close()
    return loop


def _start_counting(counts: collections.Counter) -> None:
    """Count every bytecode run from now on, by function, until sys.settrace(None)."""
    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"] += 1
        return tracer
    # settrace reaches new frames only: give the running ones (the loop's callers) the tracer.
    f = sys._getframe().f_back
    while f is not None:
        f.f_trace, f.f_trace_opcodes = tracer, True
        f = f.f_back
    sys.settrace(tracer)


async def _measure(loop: Loop, args: argparse.Namespace) -> None:
    await loop(200)
    gc.collect()
    n = args.n
    if args.calls:
        profiler = cProfile.Profile()
        profiler.enable()
        await loop(n)
        profiler.disable()
        print(f"{args.loop}: {pstats.Stats(profiler).total_calls / n:.1f} calls per operation")
    elif args.bytecodes:
        # Everything that runs while the loop runs is counted, trio's scheduler included.
        counts: collections.Counter = collections.Counter()
        _start_counting(counts)
        try:
            await loop(n)
        finally:
            sys.settrace(None)
        print(f"{args.loop}: {sum(counts.values()) / n:,.0f} bytecodes per operation; the most:")
        for name, c in counts.most_common(25):
            print(f"  {c / n:8.1f}  {name}")
    else:
        rounds = []
        for _ in range(args.rounds):
            t0 = time.thread_time()
            await loop(n)
            rounds.append((time.thread_time() - t0) / n * 1e6)
        every = " ".join(f"{r:.1f}" for r in rounds)
        print(f"{args.loop}: {min(rounds):.2f} µs CPU per operation (min; rounds: {every})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.steady",
                                 description="Time or count the small-message loops alone.")
    ap.add_argument("loop", choices=["udp", "fakenet", "echo", "connect_close"])
    ap.add_argument("--n", type=int, default=3000, help="operations per round (default 3000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of CPU time (default 5)")
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--calls", action="store_true", help="count function calls instead")
    what.add_argument("--bytecodes", action="store_true", help="count bytecodes instead")
    args = ap.parse_args(argv)

    if args.loop == "fakenet":
        from trio.testing._fake_net import FakeNet  # private module: import at use

        async def fake_main() -> None:
            FakeNet().enable()
            await _measure(await _udp(lambda: trio.socket.socket(socket.AF_INET,
                                                                  socket.SOCK_DGRAM)), args)
        trio.run(fake_main)
        return 0

    import pystack

    async def main_() -> None:
        async with pystack.Network(seed=1) as net:
            host = net.add_host("a")
            async with trio.open_nursery() as nursery:
                if args.loop == "udp":
                    loop = await _udp(lambda: host.socket(socket.AF_INET, socket.SOCK_DGRAM))
                elif args.loop == "echo":
                    loop = await _echo(host, nursery)
                else:
                    loop = await _connect_close(host, nursery)
                await _measure(loop, args)
                nursery.cancel_scope.cancel()
    trio.run(main_, clock=trio.testing.MockClock(autojump_threshold=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
