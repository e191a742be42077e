"""The anchors: what each pystack figure is compared with, measured in the same process.

* `kernel_tcp_echo` — the real kernel's loopback TCP through trio: ``trio.open_tcp_stream``
  to a ``trio.serve_tcp`` on 127.0.0.1 (an ephemeral port), 4-byte messages echoed one at a
  time. Value: round trips per second.
* `kernel_tcp_connect_close` — the same server; each round opens a connection, the server
  closes it at once, the client reads EOF and closes. Value: connections per second.
* `memory_stream_bulk` — ``trio.testing.memory_stream_pair``: one task writes ``total``
  bytes in ``chunk``-byte ``send_all`` calls, another reads them. Value: MB/s (10^6 B/s).
  This is the cost of moving bytes between two trio tasks with nothing in between: what a
  pystack byte stream must be measured against.
* `fakenet_udp_pairs` — trio's FakeNet (``trio.testing._fake_net.FakeNet().enable()``
  inside the run swaps trio.socket for in-memory UDP): two sockets on 127.0.0.1, one
  ``sendto`` of 64 bytes then one ``recvfrom``. Value: pairs per second.

Every loop stops at its count or its ``seconds`` budget, whichever comes first, and the value
is computed from the work actually done. Real traffic goes only to 127.0.0.1. The keyword
arguments match those of the pystack functions in `benchmarks.figures`, so that one plan
drives both sides.
"""

from __future__ import annotations

import functools
import socket
import time

import trio
import trio.testing

from .harness import Deadline, Measurement, grace, rate, run_real


async def _serve_tcp(nursery: trio.Nursery, handler) -> int:
    serve = functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
    listeners = await nursery.start(serve)
    return listeners[0].socket.getsockname()[1]


async def _receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise ConnectionResetError("peer closed the connection early")
        buf += chunk
    return bytes(buf)


def kernel_tcp_echo(*, round_trips: int, seconds: float, size: int = 4) -> Measurement:
    """Echo round trips per second over the kernel's loopback, through trio streams."""

    async def echo(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)

    async def main() -> Measurement:
        async with trio.open_nursery() as nursery:
            port = await _serve_tcp(nursery, echo)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            msg = b"x" * size
            done = 0
            deadline = Deadline(seconds)
            t0 = time.perf_counter()
            while done < round_trips and not deadline.expired():
                await stream.send_all(msg)
                if await _receive_exactly(stream, size) != msg:
                    raise AssertionError("echo returned other bytes")
                done += 1
            elapsed = time.perf_counter() - t0
            await stream.aclose()
            nursery.cancel_scope.cancel()
        return rate(done, elapsed)

    return run_real(main, wall_limit=seconds + grace())


def kernel_tcp_connect_close(*, connections: int, seconds: float) -> Measurement:
    """Connections opened and closed per second over the kernel's loopback, through trio."""

    async def close_at_once(stream: trio.SocketStream) -> None:
        return  # serve_tcp closes the stream when the handler returns

    async def main() -> Measurement:
        async with trio.open_nursery() as nursery:
            port = await _serve_tcp(nursery, close_at_once)
            done = 0
            deadline = Deadline(seconds)
            t0 = time.perf_counter()
            while done < connections and not deadline.expired():
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                if await stream.receive_some(1) != b"":
                    raise AssertionError("server sent data")
                await stream.aclose()
                done += 1
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
        return rate(done, elapsed)

    return run_real(main, wall_limit=seconds + grace())


def memory_stream_bulk(*, total: int, chunk: int, seconds: float) -> Measurement:
    """MB/s through ``trio.testing.memory_stream_pair``, in ``chunk``-byte writes."""

    async def main() -> Measurement:
        left, right = trio.testing.memory_stream_pair()
        data = b"\x5a" * chunk
        received = 0
        deadline = Deadline(seconds)

        async def writer() -> None:
            sent = 0
            while sent < total and not deadline.expired():
                await left.send_all(data)
                sent += chunk
            await left.aclose()

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            while data_in := await right.receive_some(65536):
                received += len(data_in)
        elapsed = time.perf_counter() - t0
        return rate(received / 1e6, elapsed)

    return run_real(main, wall_limit=seconds + grace())


def fakenet_udp_pairs(*, pairs: int, seconds: float, size: int = 64) -> Measurement:
    """UDP sendto+recvfrom pairs per second through trio's FakeNet."""
    from trio.testing._fake_net import FakeNet  # private module: import at use, not at load

    async def main() -> Measurement:
        FakeNet().enable()  # a RunVar: affects this trio.run only
        tx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await tx.bind(("127.0.0.1", 9000))
        await rx.bind(("127.0.0.1", 9001))
        dest = ("127.0.0.1", 9001)
        msg = b"u" * size
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
        return rate(done, elapsed)

    return run_real(main, wall_limit=seconds + grace())
